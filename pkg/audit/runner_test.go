package audit

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/harbormaster-dev/harbormaster/pkg/config"
)

// staticSource always returns the same snapshot.
type staticSource struct{ snap Snapshot }

func (s staticSource) Snapshot(context.Context) (Snapshot, error) { return s.snap, nil }

// notReadySource fails until ready is closed, like a webhook replica that
// has not loaded its configuration yet.
type notReadySource struct {
	staticSource
	ready chan struct{}
}

func (s notReadySource) Snapshot(ctx context.Context) (Snapshot, error) {
	select {
	case <-s.ready:
		return s.staticSource.Snapshot(ctx)
	default:
		return Snapshot{}, errors.New("no configuration loaded yet")
	}
}

func foreignReport(namespace, name string, labels map[string]string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion(ReportGroup + "/" + ReportVersion)
	u.SetKind(ReportKind)
	u.SetNamespace(namespace)
	u.SetName(name)
	u.SetLabels(labels)
	return u
}

func newRunner(t *testing.T, objects []runtime.Object, reports ...runtime.Object) (*Runner, *fake.Clientset, *dynamicfake.FakeDynamicClient) {
	t.Helper()
	client := fake.NewClientset(objects...)
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{ReportGVR(): ReportKind + "List"}, reports...)
	r := &Runner{
		Client: client, Reports: dyn, OwnNamespace: ownNamespace, Log: logr.Discard(),
		Source: staticSource{Snapshot{Config: parseConfig(t, ""), ConfigRevision: "cfg-1", Bundle: embeddedBundle(t)}},
		Now:    func() time.Time { return time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC) },
	}
	return r, client, dyn
}

func getReport(t *testing.T, dyn *dynamicfake.FakeDynamicClient, namespace string) (*PolicyReport, bool) {
	t.Helper()
	u, err := dyn.Resource(ReportGVR()).Namespace(namespace).Get(t.Context(), ReportName, metav1.GetOptions{})
	if err != nil {
		return nil, false
	}
	p, err := PolicyReportFrom(u)
	require.NoError(t, err)
	return p, true
}

func namespace(name string, labels map[string]string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
}

func TestRunnerWritesUpdatesAndDeletesReports(t *testing.T) {
	greedy := confinedPod("team-a-web", "greedy", wildcardToleration)
	ok := confinedPod("team-a-web", "ok")
	orphan := confinedPod("scratch", "orphan")
	system := confinedPod("kube-system", "dns", wildcardToleration)
	r, client, dyn := newRunner(t,
		[]runtime.Object{
			namespace("team-a-web", map[string]string{config.LabelTenant: "team-a"}), namespace("scratch", nil), namespace("kube-system", nil),
			&greedy, &ok, &orphan, &system,
		},
		// A report of ours in a namespace that has no pods any more, and
		// someone else's report.
		foreignReport("gone", ReportName, map[string]string{LabelManagedBy: ManagedByValue}),
		foreignReport("scratch", "kyverno-report", map[string]string{LabelManagedBy: "kyverno"}),
	)

	require.NoError(t, r.Run(t.Context()))
	teamA, found := getReport(t, dyn, "team-a-web")
	require.True(t, found)
	assert.Equal(t, 1, teamA.Summary.Fail)
	require.Len(t, teamA.Results, 1)
	assert.Equal(t, "HM-DH-003", teamA.Results[0].Policy)
	assert.Equal(t, "cfg-1", teamA.Annotations[AnnotationConfigRevision])
	_, found = getReport(t, dyn, "scratch")
	assert.True(t, found)
	_, found = getReport(t, dyn, "kube-system")
	assert.False(t, found, "exempt namespaces get no report")
	_, found = getReport(t, dyn, "gone")
	assert.False(t, found, "the report of a namespace without pods is deleted")
	_, err := dyn.Resource(ReportGVR()).Namespace("scratch").Get(t.Context(), "kyverno-report", metav1.GetOptions{})
	assert.NoError(t, err, "other reports are left alone")

	// Someone labels our report; the pod is fixed; the orphan goes away.
	u, err := dyn.Resource(ReportGVR()).Namespace("team-a-web").Get(t.Context(), ReportName, metav1.GetOptions{})
	require.NoError(t, err)
	u.SetLabels(map[string]string{LabelManagedBy: ManagedByValue, "team": "a"})
	_, err = dyn.Resource(ReportGVR()).Namespace("team-a-web").Update(t.Context(), u, metav1.UpdateOptions{})
	require.NoError(t, err)
	require.NoError(t, client.CoreV1().Pods("team-a-web").Delete(t.Context(), "greedy", metav1.DeleteOptions{}))
	require.NoError(t, client.CoreV1().Pods("scratch").Delete(t.Context(), "orphan", metav1.DeleteOptions{}))

	require.NoError(t, r.Run(t.Context()))
	teamA, found = getReport(t, dyn, "team-a-web")
	require.True(t, found)
	assert.Equal(t, 0, teamA.Summary.Fail)
	assert.Empty(t, teamA.Results)
	assert.Equal(t, "a", teamA.Labels["team"], "labels others added are kept")
	_, found = getReport(t, dyn, "scratch")
	assert.False(t, found)
}

func TestRunnerOneNamespace(t *testing.T) {
	greedy := confinedPod("team-a-web", "greedy", wildcardToleration)
	orphan := confinedPod("scratch", "orphan")
	r, _, dyn := newRunner(t,
		[]runtime.Object{namespace("team-a-web", map[string]string{config.LabelTenant: "team-a"}), namespace("scratch", nil), &greedy, &orphan},
		foreignReport("gone", ReportName, map[string]string{LabelManagedBy: ManagedByValue}),
	)
	r.Namespace = "team-a-web"
	reports, err := r.Collect(t.Context())
	require.NoError(t, err)
	require.Len(t, reports, 1)
	assert.Equal(t, "team-a-web", reports[0].Namespace)
	require.NoError(t, r.Write(t.Context(), reports))
	_, found := getReport(t, dyn, "gone")
	assert.True(t, found, "reports outside the audited namespace are left alone")
}

func TestRunnerStartRetriesAndStopsWithItsContext(t *testing.T) {
	r, _, dyn := newRunner(t, []runtime.Object{namespace("scratch", nil)})
	orphan := confinedPod("scratch", "orphan")
	_, err := r.Client.CoreV1().Pods("scratch").Create(t.Context(), &orphan, metav1.CreateOptions{})
	require.NoError(t, err)
	assert.True(t, r.NeedLeaderElection())

	r.Interval = 0
	require.Error(t, r.Start(t.Context()), "a periodic audit needs an interval")

	ready := make(chan struct{})
	r.Source = notReadySource{staticSource: r.Source.(staticSource), ready: ready}
	r.Interval, r.RetryDelay = time.Hour, 10*time.Millisecond
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Start(ctx) }()
	time.Sleep(50 * time.Millisecond) // a few failed runs
	close(ready)
	require.Eventually(t, func() bool {
		_, err := dyn.Resource(ReportGVR()).Namespace("scratch").Get(ctx, ReportName, metav1.GetOptions{})
		return err == nil
	}, 10*time.Second, 10*time.Millisecond, "a failed run is retried after RetryDelay, not Interval")
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Start did not return after its context ended")
	}
}
