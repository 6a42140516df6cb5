package loadaware

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	schedulerapi "k8s.io/kubernetes/pkg/scheduler/apis/config"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/defaultbinder"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/queuesort"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"
	tf "k8s.io/kubernetes/pkg/scheduler/testing/framework"
	"k8s.io/utils/ptr"

	"github.com/harbormaster-dev/harbormaster/pkg/utilization"
)

// promStub answers /api/v1/query with a vector of per-node values, or
// with a failure the test switches on.
type promStub struct {
	*httptest.Server
	mu      sync.Mutex
	cpu     map[string]float64
	at      func() time.Time
	fail    func(w http.ResponseWriter) bool
	queries atomic.Int64
}

func newPromStub(t *testing.T, cpu map[string]float64) *promStub {
	s := &promStub{cpu: cpu, at: time.Now}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.queries.Add(1)
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.fail != nil && s.fail(w) {
			return
		}
		var series []string
		for node, v := range s.cpu {
			series = append(series, fmt.Sprintf(`{"metric":{"node":%q},"value":[%.3f,"%g"]}`, node, float64(s.at().UnixMilli())/1000, v))
		}
		fmt.Fprintf(w, `{"status":"success","data":{"resultType":"vector","result":[%s]}}`, strings.Join(series, ","))
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *promStub) setFailure(fail func(w http.ResponseWriter) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = fail
}

func cpuOnlyArgs(address string, extra string) string {
	return fmt.Sprintf(`{
	  "scoringStrategy":{"resources":[{"name":"cpu","weight":1}]},
	  "stalenessWindow":"30s",
	  "sources":{"prometheus":{"address":%q,"queries":{"cpu":"node_cpu"},"nodeLabels":["node"],"refreshInterval":"100ms","timeout":"100ms"}}%s}`, address, extra)
}

type testEnv struct {
	pl       *LoadAware
	client   *fake.Clientset
	registry *prometheus.Registry
}

// newTestEnv builds the plugin through a real framework from JSON args,
// the way the scheduler does from its config file.
func newTestEnv(t *testing.T, argsJSON string, objects ...runtime.Object) *testEnv {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	env := &testEnv{client: fake.NewClientset(objects...), registry: prometheus.NewPedanticRegistry()}
	informerFactory := informers.NewSharedInformerFactory(env.client, 0)
	factory := Factory(Options{MetricsRegisterer: env.registry})
	register := func(reg *frameworkruntime.Registry, profile *schedulerapi.KubeSchedulerProfile) {
		_ = reg.Register(Name, func(ctx context.Context, obj runtime.Object, h framework.Handle) (framework.Plugin, error) {
			p, err := factory(ctx, obj, h)
			if err == nil {
				env.pl = p.(*LoadAware)
			}
			return p, err
		})
		profile.Plugins.MultiPoint.Enabled = append(profile.Plugins.MultiPoint.Enabled, schedulerapi.Plugin{Name: Name})
		profile.PluginConfig = append(profile.PluginConfig, schedulerapi.PluginConfig{
			Name: Name, Args: &runtime.Unknown{Raw: []byte(argsJSON), ContentType: runtime.ContentTypeJSON},
		})
	}
	fw, err := tf.NewFramework(ctx, []tf.RegisterPluginFunc{
		tf.RegisterQueueSortPlugin(queuesort.Name, queuesort.New),
		tf.RegisterBindPlugin(defaultbinder.Name, defaultbinder.New),
		register,
	}, "test-profile", frameworkruntime.WithClientSet(env.client), frameworkruntime.WithInformerFactory(informerFactory))
	require.NoError(t, err)
	informerFactory.Start(ctx.Done())
	informerFactory.WaitForCacheSync(ctx.Done())
	t.Cleanup(func() {
		require.NoError(t, fw.Close())
		cancel()
		informerFactory.Shutdown()
	})
	return env
}

func (e *testEnv) waitForSample(t *testing.T, node string) {
	t.Helper()
	require.Eventually(t, func() bool {
		_, ok := e.pl.Snapshot().Get(node, utilization.CPU)
		return ok
	}, 10*time.Second, 10*time.Millisecond, "no sample for %s", node)
}

// scoreAll runs one cycle's PreFilter/Filter/PreScore/Score like the
// framework does and returns the feasible nodes' scores.
func (e *testEnv) scoreAll(t *testing.T, state fwk.CycleState, pod *v1.Pod, infos []fwk.NodeInfo) map[string]int64 {
	t.Helper()
	ctx := t.Context()
	_, st := e.pl.PreFilter(ctx, state, pod, infos)
	var feasible []fwk.NodeInfo
	if st.IsSkip() {
		feasible = infos
	} else {
		require.True(t, st.IsSuccess(), "PreFilter: %v", st)
		for _, ni := range infos {
			if st := e.pl.Filter(ctx, state, pod, ni); st.IsSuccess() {
				feasible = append(feasible, ni)
			} else {
				require.Equal(t, fwk.UnschedulableAndUnresolvable, st.Code(), st.Message())
			}
		}
	}
	require.True(t, e.pl.PreScore(ctx, state, pod, feasible).IsSuccess())
	scores := map[string]int64{}
	for _, ni := range feasible {
		s, st := e.pl.Score(ctx, state, pod, ni)
		require.True(t, st.IsSuccess(), "Score must never fail: %v", st)
		scores[ni.Node().Name] = s
	}
	return scores
}

func infosFor(nodes ...*v1.Node) []fwk.NodeInfo {
	var out []fwk.NodeInfo
	for _, n := range nodes {
		out = append(out, nodeInfo(n))
	}
	return out
}

func TestPluginPrefersCoolNodesAndAnnotates(t *testing.T) {
	prom := newPromStub(t, map[string]float64{"hot": 0.9, "cool": 0.2})
	pod := testPod("p", "500m", "")
	env := newTestEnv(t, cpuOnlyArgs(prom.URL, ""), pod)
	env.waitForSample(t, "cool")
	env.waitForSample(t, "hot")

	state := framework.NewCycleState()
	nodes := infosFor(testNode("hot", "10", "10Gi"), testNode("cool", "10", "10Gi"), testNode("unknown", "10", "10Gi"))
	scores := env.scoreAll(t, state, pod, nodes)
	assert.Equal(t, map[string]int64{"hot": 5, "cool": 75, "unknown": NeutralScore}, scores)

	require.True(t, env.pl.PreBindPreFlight(t.Context(), state, pod, "cool").IsSuccess())
	require.True(t, env.pl.PreBind(t.Context(), state, pod, "cool").IsSuccess())
	got, err := env.client.CoreV1().Pods("default").Get(t.Context(), "p", metav1.GetOptions{})
	require.NoError(t, err)
	var exp Explanation
	require.NoError(t, json.Unmarshal([]byte(got.Annotations[ScoreAnnotation]), &exp))
	assert.Equal(t, "cool", exp.Node)
	assert.Equal(t, int64(75), exp.Score)
	assert.Equal(t, "prometheus", exp.Src)
	require.NotNil(t, exp.CPU)
	assert.InDelta(t, 0.25, *exp.CPU, 0.001, "measured 0.2 plus the pod's 0.5 of 10 CPUs")
	require.NotNil(t, exp.RunnerUp)
	assert.Equal(t, NodeScoreSummary{Node: "unknown", Score: NeutralScore, Src: "none"}, *exp.RunnerUp)
}

func TestPluginPreBindNeverFails(t *testing.T) {
	prom := newPromStub(t, map[string]float64{"n1": 0.5})
	// The pod does not exist in the API: the patch fails, binding goes on.
	env := newTestEnv(t, cpuOnlyArgs(prom.URL, ""))
	env.waitForSample(t, "n1")
	pod := testPod("ghost", "1", "")
	state := framework.NewCycleState()
	env.scoreAll(t, state, pod, infosFor(testNode("n1", "4", "4Gi"), testNode("n2", "4", "4Gi")))
	assert.True(t, env.pl.PreBind(t.Context(), state, pod, "n1").IsSuccess())

	// Without PreScore (a single feasible node is not scored) PreBind is skipped.
	assert.True(t, env.pl.PreBindPreFlight(t.Context(), framework.NewCycleState(), pod, "n1").IsSkip())
}

func TestPluginAnnotationCanBeDisabled(t *testing.T) {
	prom := newPromStub(t, map[string]float64{"n1": 0.5})
	pod := testPod("p", "1", "")
	env := newTestEnv(t, cpuOnlyArgs(prom.URL, `,"annotatePods":false`), pod)
	state := framework.NewCycleState()
	env.scoreAll(t, state, pod, infosFor(testNode("n1", "4", "4Gi"), testNode("n2", "4", "4Gi")))
	require.True(t, env.pl.PreBind(t.Context(), state, pod, "n1").IsSuccess())
	got, err := env.client.CoreV1().Pods("default").Get(t.Context(), "p", metav1.GetOptions{})
	require.NoError(t, err)
	assert.NotContains(t, got.Annotations, ScoreAnnotation)
}

// A source that breaks after working makes nodes neutral once their last
// good samples are older than the window; no extension point errors, and
// the filter never rejects a node for lack of data.
func TestPluginNeutralWhenSourceBreaks(t *testing.T) {
	for _, tc := range []struct {
		name string
		fail func(w http.ResponseWriter) bool
		// stop closes the server instead: Prometheus down.
		stop bool
	}{
		{name: "HTTP 500", fail: func(w http.ResponseWriter) bool {
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprint(w, `{"status":"error","errorType":"internal","error":"tsdb on fire"}`)
			return true
		}},
		{name: "empty result", fail: func(w http.ResponseWriter) bool {
			fmt.Fprint(w, `{"status":"success","data":{"resultType":"vector","result":[]}}`)
			return true
		}},
		{name: "NaN for every node", fail: func(w http.ResponseWriter) bool {
			fmt.Fprintf(w, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"node":"n1"},"value":[%d,"NaN"]},{"metric":{"node":"n2"},"value":[%d,"NaN"]}]}}`,
				time.Now().Unix(), time.Now().Unix())
			return true
		}},
		{name: "missing nodes", fail: func(w http.ResponseWriter) bool {
			fmt.Fprintf(w, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"node":"elsewhere"},"value":[%d,"0.5"]}]}}`, time.Now().Unix())
			return true
		}},
		{name: "Prometheus down", stop: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prom := newPromStub(t, map[string]float64{"n1": 0.9, "n2": 0.1})
			args := strings.Replace(cpuOnlyArgs(prom.URL, `,"filter":{"thresholds":[{"name":"cpu","percent":50}]}`), `"30s"`, `"500ms"`, 1)
			env := newTestEnv(t, args)
			env.waitForSample(t, "n1")
			nodes := infosFor(testNode("n1", "4", "4Gi"), testNode("n2", "4", "4Gi"))
			healthy := env.scoreAll(t, framework.NewCycleState(), testPod("p", "1", ""), nodes)
			assert.Equal(t, map[string]int64{"n2": 65}, healthy, "n1 is filtered while data is fresh")

			if tc.stop {
				prom.Close()
			} else {
				prom.setFailure(tc.fail)
			}
			require.Eventually(t, func() bool {
				return fetchErrors(t, env.registry) > 0 || droppedSamples(t, env.registry) > 0 || tc.name == "missing nodes"
			}, 10*time.Second, 10*time.Millisecond, "the failure is counted")
			require.Eventually(t, func() bool {
				scores := env.scoreAll(t, framework.NewCycleState(), testPod("p", "1", ""), nodes)
				return assert.ObjectsAreEqual(map[string]int64{"n1": NeutralScore, "n2": NeutralScore}, scores)
			}, 10*time.Second, 50*time.Millisecond, "unknown is neutral and never filtered")
		})
	}
}

func TestPluginStaleSamplesAreNeutral(t *testing.T) {
	prom := newPromStub(t, map[string]float64{"n1": 0.9, "n2": 0.1})
	prom.at = func() time.Time { return time.Now().Add(-time.Hour) }
	env := newTestEnv(t, cpuOnlyArgs(prom.URL, ""))
	require.Eventually(t, func() bool { _, ok := env.pl.Snapshot().Latest("n1", utilization.CPU); return ok }, 10*time.Second, 10*time.Millisecond)
	scores := env.scoreAll(t, framework.NewCycleState(), testPod("p", "1", ""), infosFor(testNode("n1", "4", "4Gi"), testNode("n2", "4", "4Gi")))
	assert.Equal(t, map[string]int64{"n1": NeutralScore, "n2": NeutralScore}, scores)
}

func TestPluginFilter(t *testing.T) {
	prom := newPromStub(t, map[string]float64{"hot": 0.95, "cool": 0.2})
	env := newTestEnv(t, cpuOnlyArgs(prom.URL, `,"filter":{"thresholds":[{"name":"cpu","percent":90}]}`))
	env.waitForSample(t, "hot")
	nodes := infosFor(testNode("hot", "4", "4Gi"), testNode("cool", "4", "4Gi"), testNode("unknown", "4", "4Gi"))

	scores := env.scoreAll(t, framework.NewCycleState(), testPod("p", "100m", ""), nodes)
	assert.NotContains(t, scores, "hot", "non-critical pods are kept off the hot node")
	assert.Contains(t, scores, "unknown", "a node without data is never filtered")

	critical := testPod("agent", "100m", "")
	critical.Spec.PriorityClassName = "system-node-critical"
	critical.Spec.Priority = ptr.To[int32](2000001000)
	_, st := env.pl.PreFilter(t.Context(), framework.NewCycleState(), critical, nodes)
	assert.True(t, st.IsSkip(), "critical pods skip the filter")
	scores = env.scoreAll(t, framework.NewCycleState(), critical, nodes)
	assert.Contains(t, scores, "hot")

	st = env.pl.Filter(t.Context(), framework.NewCycleState(), testPod("p2", "1", ""), nodes[0])
	assert.Equal(t, fwk.UnschedulableAndUnresolvable, st.Code())
	assert.Equal(t, "node cpu utilisation above threshold", st.Message())
}

// A burst of pods between two samples spreads out instead of piling onto
// the node that looked coolest: each placed (assumed) pod is estimated.
func TestPluginBurstIsEstimated(t *testing.T) {
	prom := newPromStub(t, map[string]float64{"n1": 0.10, "n2": 0.15, "n3": 0.9})
	env := newTestEnv(t, cpuOnlyArgs(prom.URL, ""))
	env.waitForSample(t, "n1")
	env.waitForSample(t, "n2")
	infos := map[string]fwk.NodeInfo{}
	var list []fwk.NodeInfo
	for _, n := range []string{"n1", "n2", "n3"} {
		infos[n] = nodeInfo(testNode(n, "10", "10Gi"))
		list = append(list, infos[n])
	}
	placed := map[string]int{}
	for i := range 6 {
		pod := testPod(fmt.Sprintf("burst-%d", i), "1", "")
		scores := env.scoreAll(t, framework.NewCycleState(), pod, list)
		best := ""
		for _, n := range []string{"n1", "n2", "n3"} {
			if best == "" || scores[n] > scores[best] {
				best = n
			}
		}
		placed[best]++
		// The scheduler's cache assumes the pod on the chosen node before
		// the next cycle; the bind tracker has not seen it bound yet.
		p := pod.DeepCopy()
		p.Spec.NodeName = best
		infos[best].AddPodInfo(mustPodInfo(t, p))
	}
	assert.Zero(t, placed["n3"])
	assert.GreaterOrEqual(t, placed["n2"], 2, "placements so far count against n1: %v", placed)
}

// Pods the informer saw bound before a node's sample are in the sample and
// not estimated again; so are their replacements only once measured.
func TestPluginTracksBindTimesFromInformer(t *testing.T) {
	prom := newPromStub(t, map[string]float64{"n1": 0.2})
	old := testPod("old", "4", "")
	old.Spec.NodeName = "n1"
	long := metav1.NewTime(time.Now().Add(-time.Hour))
	old.Status.Conditions = []v1.PodCondition{{Type: v1.PodScheduled, Status: v1.ConditionTrue, LastTransitionTime: long}}
	env := newTestEnv(t, cpuOnlyArgs(prom.URL, ""), old)
	env.waitForSample(t, "n1")
	require.Eventually(t, func() bool { return env.pl.tracker.Len() == 1 }, 10*time.Second, 10*time.Millisecond)

	ni := nodeInfo(testNode("n1", "10", "10Gi"), old, testPod("assumed", "2", ""))
	state := framework.NewCycleState()
	env.scoreAll(t, state, testPod("p", "1", ""), []fwk.NodeInfo{ni})
	s, ok := readPreScore(state)
	require.True(t, ok)
	r := s.assessments["n1"].Readings[utilization.CPU]
	assert.Equal(t, 1, r.PendingPods, "only the assumed pod is pending")
	assert.InDelta(t, 0.3, r.Estimated, 1e-9, "assumed 2 CPUs + incoming 1 CPU of 10")
}

func mustPodInfo(t *testing.T, p *v1.Pod) fwk.PodInfo {
	pi, err := framework.NewPodInfo(p)
	require.NoError(t, err)
	return pi
}

func TestNewRejectsInvalidArgs(t *testing.T) {
	_, err := New(t.Context(), &runtime.Unknown{Raw: []byte(`{"scoringStrategy":{"type":"Random"}}`)}, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "args.scoringStrategy.type")
	assert.Contains(t, err.Error(), Name)
}

func TestCloseStopsRefreshing(t *testing.T) {
	prom := newPromStub(t, map[string]float64{"n1": 0.5})
	env := newTestEnv(t, cpuOnlyArgs(prom.URL, ""))
	env.waitForSample(t, "n1")
	require.NoError(t, env.pl.Close())
	// A query sent just before Close may still reach the stub after Close
	// returned (the client gave up, the bytes were on the wire); what must
	// not happen is a new fetch starting later.
	time.Sleep(100 * time.Millisecond)
	before := prom.queries.Load()
	time.Sleep(300 * time.Millisecond)
	assert.Equal(t, before, prom.queries.Load(), "no fetch after Close")
	n, err := testutil.GatherAndCount(env.registry)
	require.NoError(t, err)
	assert.Zero(t, n, "metrics unregistered")
}

func TestEventsToRegister(t *testing.T) {
	events, err := (&LoadAware{}).EventsToRegister(t.Context())
	require.NoError(t, err)
	require.Len(t, events, 2)
	hint := events[1].QueueingHintFn
	logger := klog.Background()
	assigned := testPod("a", "1", "")
	assigned.Spec.NodeName = "n1"
	h, err := hint(logger, testPod("x", "1", ""), assigned, nil)
	require.NoError(t, err)
	assert.Equal(t, fwk.Queue, h)
	h, err = hint(logger, testPod("x", "1", ""), testPod("pending", "1", ""), nil)
	require.NoError(t, err)
	assert.Equal(t, fwk.QueueSkip, h)
}

func fetchErrors(t *testing.T, reg prometheus.Gatherer) float64 {
	return sumMetric(t, reg, "harbormaster_utilization_fetch_errors_total")
}

func droppedSamples(t *testing.T, reg prometheus.Gatherer) float64 {
	return sumMetric(t, reg, "harbormaster_utilization_dropped_samples_total")
}

func sumMetric(t *testing.T, reg prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "profile" {
					assert.Equal(t, "test-profile", l.GetValue(), "metrics carry the profile")
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}
