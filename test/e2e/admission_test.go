package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/harbormaster-dev/harbormaster/pkg/config"
	"github.com/harbormaster-dev/harbormaster/test/framework"
)

// admissionConfig is the configuration of the admission tests: two tenants,
// three host groups, a dedicated pool per tenant, and a namespace-level
// overcommit ratio that beats the host group's.
const admissionConfig = `apiVersion: config.harbormaster.io/v1alpha1
kind: HarbormasterConfig
overcommit:
  default: {cpu: 2, memory: 1}
  hostGroups:
    batch: {cpu: 8}
  namespaces:
    team-a-web: {cpu: 4, memory: 2}
antiAffinity:
  enabled: true
  weight: 40
  workloadClasses:
    cpu-intensive: {weight: 70}
hostGroups:
  general: {nodeSelector: {matchLabels: {harbormaster.io/host-group: general}}}
  batch: {nodeSelector: {matchLabels: {harbormaster.io/host-group: batch}}}
  restricted: {nodeSelector: {matchLabels: {harbormaster.io/host-group: restricted}}}
tenants:
  team-a: {hostGroups: [general, batch], defaultHostGroup: general}
  team-b: {hostGroups: [restricted], defaultHostGroup: restricted}
dedicatedPools:
  spark-a: {tenant: team-a, app: spark, placement: required}
  secure-b: {tenant: team-b, placement: required}
policy:
  # The admission tests use namespaces without a tenant too.
  enforcement: {HM-NS-001: warn}
`

func admissionNodes() []framework.NodeSpec {
	node := func(name, group, pool string) framework.NodeSpec {
		s := framework.NodeSpec{Name: name, CPU: "16", Memory: "64Gi", Labels: map[string]string{"harbormaster.io/host-group": group}}
		if pool != "" {
			s.Labels[config.LabelDedicated] = pool
			s.Taints = []corev1.Taint{{Key: config.LabelDedicated, Value: pool, Effect: corev1.TaintEffectNoSchedule}}
		}
		return s
	}
	return []framework.NodeSpec{
		node("general-0", "general", ""), node("general-1", "general", ""),
		node("batch-0", "batch", ""),
		node("restricted-0", "restricted", ""),
		node("spark-a-0", "batch", "spark-a"),
		node("secure-b-0", "restricted", "secure-b"),
	}
}

type admissionEnv struct {
	cp      *framework.ControlPlane
	webhook *framework.RunningWebhook
}

func startAdmissionEnv(t *testing.T, withScheduler bool) *admissionEnv {
	return startAdmissionEnvWith(t, withScheduler, admissionConfig)
}

func startAdmissionEnvWith(t *testing.T, withScheduler bool, configYAML string) *admissionEnv {
	t.Helper()
	cp := framework.Start(t, framework.Options{ControllerManager: true})
	require.NoError(t, framework.CreateNodes(t.Context(), cp.Client, admissionNodes()...))
	wh := framework.RunWebhook(t, cp, configYAML)
	if withScheduler {
		// The default profile name, so pods of every controller use it.
		framework.RunScheduler(t, cp.SchedulerConfig(corev1.DefaultSchedulerName, "", false))
	}
	return &admissionEnv{cp: cp, webhook: wh}
}

func (e *admissionEnv) namespace(t *testing.T, name, tenant string) string {
	t.Helper()
	labels := map[string]string{}
	if tenant != "" {
		labels[config.LabelTenant] = tenant
	}
	_, err := e.cp.Client.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	return name
}

// limitOnly is a container spec as users write it for overcommit: limits
// only; the API server defaults requests to the limits before admission.
func limitOnly(cpu, memory string) corev1.PodSpec {
	return corev1.PodSpec{Containers: []corev1.Container{{
		Name: "app", Image: "registry.k8s.io/pause:3.10",
		Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{
			corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(memory),
		}},
	}}}
}

func template(labels map[string]string, spec corev1.PodSpec) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: spec}
}

// TestWorkloadControllersGetMutatedPods creates every kind of workload in a
// tenant namespace and checks the pods their controllers create carry the
// overcommitted requests, the host-group confinement and the soft
// anti-affinity; the DaemonSet only gets pods on its tenant's groups.
func TestWorkloadControllersGetMutatedPods(t *testing.T) {
	env := startAdmissionEnv(t, false)
	ctx := t.Context()
	c := env.cp.Client
	ns := env.namespace(t, "team-a-web", "team-a")

	spec := limitOnly("2", "1Gi")
	labels := func(app string) map[string]string {
		return map[string]string{"app.kubernetes.io/name": app, "app.kubernetes.io/instance": app + "-1"}
	}
	_, err := c.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](2), Selector: &metav1.LabelSelector{MatchLabels: labels("web")},
			Template: template(labels("web"), spec)},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = c.AppsV1().StatefulSets(ns).Create(ctx, &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "db"},
		Spec: appsv1.StatefulSetSpec{Replicas: ptr.To[int32](1), Selector: &metav1.LabelSelector{MatchLabels: labels("db")},
			Template: template(labels("db"), spec)},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	jobSpec := spec.DeepCopy()
	jobSpec.RestartPolicy = corev1.RestartPolicyNever
	_, err = c.BatchV1().Jobs(ns).Create(ctx, &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "batch"},
		Spec:       batchv1.JobSpec{Template: template(labels("batch"), *jobSpec)},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = c.BatchV1().CronJobs(ns).Create(ctx, &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Name: "nightly"},
		Spec: batchv1.CronJobSpec{Schedule: "* * * * *", JobTemplate: batchv1.JobTemplateSpec{
			Spec: batchv1.JobSpec{Template: template(labels("nightly"), *jobSpec)}}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = c.AppsV1().DaemonSets(ns).Create(ctx, &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "agent"},
		Spec: appsv1.DaemonSetSpec{Selector: &metav1.LabelSelector{MatchLabels: labels("agent")},
			Template: template(labels("agent"), spec)},
	}, metav1.CreateOptions{})
	require.NoError(t, err)

	// Namespace ratio cpu 4, memory 2 (beats the default 2 and nothing else).
	wantRequests := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("512Mi")}
	for _, app := range []string{"web", "db", "batch", "nightly"} {
		want := 1
		if app == "web" {
			want = 2
		}
		// The CronJob fires on the next minute boundary.
		pods := waitForPodCount(t, c, ns, "app.kubernetes.io/name="+app, want, 90*time.Second)
		for _, pod := range pods {
			assertRequests(t, pod, wantRequests)
			assertConfinedTo(t, pod, "general")
			assertSelfAntiAffinity(t, pod, 40)
		}
	}

	// The DaemonSet's template is confined, so its controller only creates
	// pods on the two general nodes (not on batch, restricted or the pools).
	ds, err := c.AppsV1().DaemonSets(ns).Get(ctx, "agent", metav1.GetOptions{})
	require.NoError(t, err)
	require.NotNil(t, ds.Spec.Template.Spec.Affinity, "DaemonSet template is confined")
	agents := waitForPodCount(t, c, ns, "app.kubernetes.io/name=agent", 2, 60*time.Second)
	nodes := map[string]bool{}
	for _, pod := range agents {
		assertRequests(t, pod, wantRequests)
		assertConfinedTo(t, pod, "general")
		nodes[daemonPodNode(t, pod)] = true
	}
	require.Equal(t, map[string]bool{"general-0": true, "general-1": true}, nodes)
}

// TestLiveConfigReload edits the ConfigMap and checks the next pod follows
// without restart; a bad document is refused at write time, and one that
// slips past (validating webhook absent) is rejected by the watcher while the
// last good configuration keeps serving.
func TestLiveConfigReload(t *testing.T) {
	env := startAdmissionEnv(t, false)
	ctx := t.Context()
	ns := env.namespace(t, "plain", "")

	podRequests := func(name string) corev1.ResourceList {
		pod, err := env.cp.Client.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: limitOnly("4", "4Gi"),
		}, metav1.CreateOptions{})
		require.NoError(t, err)
		return pod.Spec.Containers[0].Resources.Requests
	}
	require.Equal(t, "2", ptr.To(podRequests("before")[corev1.ResourceCPU]).String(), "default cpu ratio 2")

	next := strings.Replace(admissionConfig, "default: {cpu: 2, memory: 1}", "default: {cpu: 8, memory: 4}", 1)
	firstRevision := env.webhook.Server.Store.Current().Revision
	require.NoError(t, framework.ApplyConfig(ctx, env.cp, next))
	require.Eventually(t, func() bool { return env.webhook.Server.Store.Current().Revision != firstRevision },
		20*time.Second, 50*time.Millisecond, "the edited ConfigMap is picked up")
	after := podRequests("after")
	require.Equal(t, "500m", ptr.To(after[corev1.ResourceCPU]).String())
	require.Equal(t, "1Gi", ptr.To(after[corev1.ResourceMemory]).String())
	goodRevision := env.webhook.Server.Store.Current().Revision

	bad := strings.Replace(next, "default: {cpu: 8, memory: 4}", "default: {cpu: 0.5, memory: 4}", 1)
	err := framework.ApplyConfig(ctx, env.cp, bad)
	require.Error(t, err, "the validating webhook refuses a bad document at write time")
	require.Contains(t, err.Error(), "overcommit.default.cpu")

	// Without the validating webhook the bad document reaches the watcher.
	require.NoError(t, env.cp.Client.AdmissionregistrationV1().ValidatingWebhookConfigurations().Delete(ctx, "harbormaster-config", metav1.DeleteOptions{}))
	require.Eventually(t, func() bool { return framework.ApplyConfig(ctx, env.cp, bad) == nil }, 20*time.Second, 200*time.Millisecond)
	require.Eventually(t, func() bool {
		return testutil.ToFloat64(env.webhook.Server.Store.Metrics().Reloads.WithLabelValues("rejected")) >= 1
	}, 20*time.Second, 100*time.Millisecond, "the watcher saw and rejected the bad document")
	require.Equal(t, goodRevision, env.webhook.Server.Store.Current().Revision)
	require.Contains(t, env.webhook.Server.Store.LastError().Error(), "overcommit.default.cpu")
	require.Equal(t, "500m", ptr.To(podRequests("still-good")[corev1.ResourceCPU]).String(), "last good configuration keeps serving")
}

// TestSystemNamespacesUntouched checks kube-system pods keep their requests
// and carry no Harbormaster annotation or affinity.
func TestSystemNamespacesUntouched(t *testing.T) {
	env := startAdmissionEnv(t, false)
	pod, err := env.cp.Client.CoreV1().Pods("kube-system").Create(t.Context(), &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "sys", Labels: map[string]string{"app": "sys"}}, Spec: limitOnly("2", "1Gi"),
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	require.Equal(t, "2", ptr.To(pod.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU]).String())
	require.Nil(t, pod.Spec.Affinity)
	require.NotContains(t, pod.Annotations, config.AnnotationOvercommit)
}

// TestTenantCannotReachForeignNodes schedules with the real scheduler: a
// tenant's pods land on its own groups, its owned dedicated pool is
// reachable for the owning app, and no field of the pod spec takes it onto
// another tenant's group or dedicated pool.
//
// Every policy is switched to dryrun: this test proves the mutation alone
// confines tenants (the policies are the second line, tested in
// governance_test.go).
func TestTenantCannotReachForeignNodes(t *testing.T) {
	env := startAdmissionEnvWith(t, true, allPoliciesDryRun(t, admissionConfig))
	ctx := t.Context()
	c := env.cp.Client
	ns := env.namespace(t, "team-a-jobs", "team-a")

	create := func(name string, labels map[string]string, mutate func(*corev1.PodSpec)) {
		spec := limitOnly("1", "1Gi")
		if mutate != nil {
			mutate(&spec)
		}
		_, err := c.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}, Spec: spec}, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	tolerateAll := func(s *corev1.PodSpec) { s.Tolerations = []corev1.Toleration{{Operator: corev1.TolerationOpExists}} }
	create("plain", nil, nil)
	create("batch", map[string]string{config.LabelHostGroup: "batch"}, nil)
	create("spark", map[string]string{"app.kubernetes.io/name": "spark"}, nil)
	// Escape attempts: every one must stay Pending (or land on team-a nodes).
	create("foreign-group-label", map[string]string{config.LabelHostGroup: "restricted"}, nil)
	create("node-selector", nil, func(s *corev1.PodSpec) {
		s.NodeSelector = map[string]string{"harbormaster.io/host-group": "restricted"}
	})
	create("affinity-or-term", nil, func(s *corev1.PodSpec) {
		s.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
			NodeSelectorTerms: []corev1.NodeSelectorTerm{
				{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "harbormaster.io/host-group", Operator: corev1.NodeSelectorOpIn, Values: []string{"restricted"}}}},
				{MatchFields: []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{"secure-b-0"}}}},
			}}}}
		tolerateAll(s)
	})
	create("wildcard-toleration-to-pool", nil, func(s *corev1.PodSpec) {
		tolerateAll(s)
		s.NodeSelector = map[string]string{config.LabelDedicated: "secure-b"}
	})
	create("foreign-pool-toleration", nil, func(s *corev1.PodSpec) {
		s.Tolerations = []corev1.Toleration{{Key: config.LabelDedicated, Operator: corev1.TolerationOpEqual, Value: "spark-a", Effect: corev1.TaintEffectNoSchedule}}
		s.NodeSelector = map[string]string{config.LabelDedicated: "spark-a"}
	})

	require.Equal(t, "general", nodeGroup(t, c, waitForScheduled(t, c, ns, "plain", 30*time.Second)))
	require.Equal(t, "batch", nodeGroup(t, c, waitForScheduled(t, c, ns, "batch", 30*time.Second)))
	require.Equal(t, "spark-a-0", waitForScheduled(t, c, ns, "spark", 30*time.Second), "the owning app reaches its dedicated pool")
	require.Equal(t, "general", nodeGroup(t, c, waitForScheduled(t, c, ns, "foreign-group-label", 30*time.Second)),
		"a group the tenant may not use falls back to its default group")

	teamA := map[string]bool{"general-0": true, "general-1": true, "batch-0": true}
	for _, name := range []string{"node-selector", "affinity-or-term", "wildcard-toleration-to-pool", "foreign-pool-toleration"} {
		waitUnschedulable(t, c, ns, name, 30*time.Second)
		pod, err := c.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		require.NoError(t, err)
		require.False(t, pod.Spec.NodeName != "" && !teamA[pod.Spec.NodeName], "%s escaped to %s", name, pod.Spec.NodeName)
	}
}

// TestWebhookDownFollowsFailurePolicy stops the webhook: tenant pods are
// refused (Fail), other namespaces' pods are admitted unmutated (Ignore),
// and system namespaces are never blocked.
func TestWebhookDownFollowsFailurePolicy(t *testing.T) {
	env := startAdmissionEnv(t, false)
	ctx := t.Context()
	c := env.cp.Client
	tenantNS := env.namespace(t, "team-a-down", "team-a")
	plainNS := env.namespace(t, "plain-down", "")
	env.webhook.Stop()

	newPod := func(name string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: limitOnly("2", "1Gi")}
	}
	_, err := c.CoreV1().Pods(tenantNS).Create(ctx, newPod("tenant"), metav1.CreateOptions{})
	require.Error(t, err, "a tenant pod is refused while the webhook is down")
	require.Contains(t, err.Error(), "tenant-pods.harbormaster.io")

	plain, err := c.CoreV1().Pods(plainNS).Create(ctx, newPod("plain"), metav1.CreateOptions{})
	require.NoError(t, err)
	require.Equal(t, "2", ptr.To(plain.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU]).String(), "admitted unmutated")

	_, err = c.CoreV1().Pods("kube-system").Create(ctx, newPod("system"), metav1.CreateOptions{})
	require.NoError(t, err)
}

// TestInPlaceResizeKeepsRatio resizes a pod's limit through pods/resize and
// checks its request follows at the same ratio.
func TestInPlaceResizeKeepsRatio(t *testing.T) {
	env := startAdmissionEnv(t, false)
	ctx := t.Context()
	c := env.cp.Client
	ns := env.namespace(t, "team-a-web", "team-a")
	pod, err := c.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "r"}, Spec: limitOnly("2", "1Gi")}, metav1.CreateOptions{})
	require.NoError(t, err)
	require.Equal(t, "500m", ptr.To(pod.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU]).String())

	patch := map[string]any{"spec": map[string]any{"containers": []map[string]any{{
		"name": "app", "resources": map[string]any{"limits": map[string]string{"cpu": "4", "memory": "1Gi"}},
	}}}}
	body, err := json.Marshal(patch)
	require.NoError(t, err)
	resized, err := c.CoreV1().Pods(ns).Patch(ctx, "r", types.StrategicMergePatchType, body, metav1.PatchOptions{}, "resize")
	require.NoError(t, err)
	require.Equal(t, "1", ptr.To(resized.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU]).String(), "4 / ratio 4")
	require.Equal(t, "4", ptr.To(resized.Spec.Containers[0].Resources.Limits[corev1.ResourceCPU]).String())
}

func assertRequests(t *testing.T, pod corev1.Pod, want corev1.ResourceList) {
	t.Helper()
	got := pod.Spec.Containers[0].Resources.Requests
	for name, q := range want {
		assert.Zero(t, q.Cmp(got[name]), "pod %s: request %s = %s, want %s", pod.Name, name, ptr.To(got[name]).String(), q.String())
	}
	assert.Contains(t, pod.Annotations, config.AnnotationOvercommit, "pod %s records its original requests", pod.Name)
}

// assertConfinedTo checks every required node-affinity term selects only the
// host group.
func assertConfinedTo(t *testing.T, pod corev1.Pod, group string) {
	t.Helper()
	aff := pod.Spec.Affinity
	require.NotNil(t, aff, "pod %s has no affinity", pod.Name)
	require.NotNil(t, aff.NodeAffinity)
	require.NotNil(t, aff.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution)
	for i, term := range aff.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
		found := false
		for _, r := range term.MatchExpressions {
			if r.Key == "harbormaster.io/host-group" && r.Operator == corev1.NodeSelectorOpIn && len(r.Values) == 1 && r.Values[0] == group {
				found = true
			}
		}
		assert.True(t, found, "pod %s term %d is not confined to %s: %+v", pod.Name, i, group, term)
	}
}

func assertSelfAntiAffinity(t *testing.T, pod corev1.Pod, weight int32) {
	t.Helper()
	aff := pod.Spec.Affinity
	require.NotNil(t, aff.PodAntiAffinity, "pod %s has no anti-affinity", pod.Name)
	terms := aff.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution
	require.Len(t, terms, 1)
	assert.Equal(t, weight, terms[0].Weight)
	assert.Equal(t, pod.Labels["app.kubernetes.io/name"], terms[0].PodAffinityTerm.LabelSelector.MatchLabels["app.kubernetes.io/name"])
	assert.Equal(t, corev1.LabelHostname, terms[0].PodAffinityTerm.TopologyKey)
}

// daemonPodNode reads the node the DaemonSet controller created a pod for
// from its metadata.name affinity term.
func daemonPodNode(t *testing.T, pod corev1.Pod) string {
	t.Helper()
	for _, term := range pod.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
		for _, f := range term.MatchFields {
			if f.Key == "metadata.name" && len(f.Values) == 1 {
				return f.Values[0]
			}
		}
	}
	t.Fatalf("DaemonSet pod %s has no metadata.name term", pod.Name)
	return ""
}

func nodeGroup(t *testing.T, c kubernetes.Interface, node string) string {
	t.Helper()
	n, err := c.CoreV1().Nodes().Get(t.Context(), node, metav1.GetOptions{})
	require.NoError(t, err)
	return n.Labels["harbormaster.io/host-group"]
}

func waitUnschedulable(t *testing.T, c kubernetes.Interface, ns, name string, timeout time.Duration) {
	t.Helper()
	err := wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		p, err := c.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, cond := range p.Status.Conditions {
			if cond.Type == corev1.PodScheduled && cond.Status == corev1.ConditionFalse && cond.Reason == corev1.PodReasonUnschedulable {
				return true, nil
			}
		}
		return p.Spec.NodeName != "", nil
	})
	require.NoError(t, err, "pod %s/%s neither unschedulable nor scheduled", ns, name)
}
