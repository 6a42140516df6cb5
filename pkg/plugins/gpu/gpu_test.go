package gpu

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	schedulerapi "k8s.io/kubernetes/pkg/scheduler/apis/config"
	internalcache "k8s.io/kubernetes/pkg/scheduler/backend/cache"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/defaultbinder"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/queuesort"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"
	tf "k8s.io/kubernetes/pkg/scheduler/testing/framework"

	"github.com/harbormaster-dev/harbormaster/pkg/gpu"
	"github.com/harbormaster-dev/harbormaster/pkg/utilization"
)

const profileName = "gpu-profile"

type testEnv struct {
	pl     *Plugin
	client *fake.Clientset
	nodes  map[string]*v1.Node
	pods   []*v1.Pod // placed pods, in the snapshot
	snap   *internalcache.Snapshot
}

// newTestEnv builds the plugin through a real framework from JSON args, as
// the scheduler does from its config file. The snapshot holds nodes and
// placed pods; objects also go to the fake API server.
func newTestEnv(t *testing.T, argsJSON string, nodes []*v1.Node, placed []*v1.Pod, objects ...runtime.Object) *testEnv {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	for _, n := range nodes {
		objects = append(objects, n)
	}
	for _, p := range placed {
		objects = append(objects, p)
	}
	env := &testEnv{client: fake.NewClientset(objects...), nodes: map[string]*v1.Node{}, pods: placed}
	for _, n := range nodes {
		env.nodes[n.Name] = n
	}
	env.snap = internalcache.NewSnapshot(placed, nodes)
	informerFactory := informers.NewSharedInformerFactory(env.client, 0)
	register := func(reg *frameworkruntime.Registry, profile *schedulerapi.KubeSchedulerProfile) {
		_ = reg.Register(Name, func(ctx context.Context, obj runtime.Object, h framework.Handle) (framework.Plugin, error) {
			p, err := New(ctx, obj, h)
			if err == nil {
				env.pl = p.(*Plugin)
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
	}, profileName, frameworkruntime.WithClientSet(env.client), frameworkruntime.WithInformerFactory(informerFactory),
		frameworkruntime.WithSnapshotSharedLister(env.snap))
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

// assume adds pod to its node in the snapshot, as the scheduler's cache
// does on assume (without the annotation PreBind writes later).
func (e *testEnv) assume(t *testing.T, pod *v1.Pod, node string) {
	t.Helper()
	p := pod.DeepCopy()
	p.Spec.NodeName = node
	e.pods = append(e.pods, p)
	e.refresh()
}

func (e *testEnv) remove(name string) {
	for i, p := range e.pods {
		if p.Name == name {
			e.pods = append(e.pods[:i], e.pods[i+1:]...)
			break
		}
	}
	e.refresh()
}

func (e *testEnv) refresh() {
	var nodes []*v1.Node
	for _, n := range e.nodes {
		nodes = append(nodes, n)
	}
	fresh := internalcache.NewSnapshot(e.pods, nodes)
	*e.snap = *fresh
}

func (e *testEnv) nodeInfo(t *testing.T, name string) fwk.NodeInfo {
	t.Helper()
	ni, err := e.snap.NodeInfos().Get(name)
	require.NoError(t, err)
	return ni
}

// cycle runs PreFilter, Filter on every node, PreScore and Score as the
// framework does; it returns the feasible nodes' scores and the rejected
// nodes' statuses.
func (e *testEnv) cycle(t *testing.T, state fwk.CycleState, pod *v1.Pod) (map[string]int64, map[string]*fwk.Status) {
	t.Helper()
	ctx := t.Context()
	all, err := e.snap.NodeInfos().List()
	require.NoError(t, err)
	rejected := map[string]*fwk.Status{}
	_, st := e.pl.PreFilter(ctx, state, pod, all)
	if !st.IsSuccess() && !st.IsSkip() {
		for _, ni := range all {
			rejected[ni.Node().Name] = st
		}
		return nil, rejected
	}
	var feasible []fwk.NodeInfo
	for _, ni := range all {
		if st.IsSkip() {
			feasible = append(feasible, ni)
		} else if fst := e.pl.Filter(ctx, state, pod, ni); fst.IsSuccess() {
			feasible = append(feasible, ni)
		} else {
			rejected[ni.Node().Name] = fst
		}
	}
	scores := map[string]int64{}
	if len(feasible) == 0 {
		return scores, rejected
	}
	require.True(t, e.pl.PreScore(ctx, state, pod, feasible).IsSuccess())
	for _, ni := range feasible {
		s, st := e.pl.Score(ctx, state, pod, ni)
		require.True(t, st.IsSuccess())
		scores[ni.Node().Name] = s
	}
	return scores, rejected
}

func gpuNode(name, model string, cards int64) *v1.Node {
	alloc := v1.ResourceList{
		v1.ResourceCPU: resource.MustParse("64"), v1.ResourceMemory: resource.MustParse("256Gi"), v1.ResourcePods: resource.MustParse("110"),
	}
	labels := map[string]string{v1.LabelHostname: name}
	if cards > 0 {
		alloc[gpu.ResourceName] = *resource.NewQuantity(cards, resource.DecimalSI)
		labels[gpu.ModelLabel] = model
	}
	return &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}, Status: v1.NodeStatus{Capacity: alloc, Allocatable: alloc}}
}

func gpuPod(name string, whole int64, annotations map[string]string) *v1.Pod {
	reqs := v1.ResourceList{v1.ResourceCPU: resource.MustParse("1"), v1.ResourceMemory: resource.MustParse("1Gi")}
	if whole > 0 {
		reqs[gpu.ResourceName] = *resource.NewQuantity(whole, resource.DecimalSI)
	}
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("uid-" + name), Annotations: annotations},
		Spec: v1.PodSpec{SchedulerName: profileName, Containers: []v1.Container{{Name: "c", Resources: v1.ResourceRequirements{
			Requests: reqs, Limits: func() v1.ResourceList {
				if whole > 0 {
					return v1.ResourceList{gpu.ResourceName: reqs[gpu.ResourceName]}
				}
				return nil
			}(),
		}}}},
	}
}

func shared(milli int) map[string]string {
	return map[string]string{gpu.MilliAnnotation: fmt.Sprint(milli)}
}

func on(p *v1.Pod, node, cards string) *v1.Pod {
	p = p.DeepCopy()
	p.Spec.NodeName = node
	if cards != "" {
		if p.Annotations == nil {
			p.Annotations = map[string]string{}
		}
		p.Annotations[gpu.CardsAnnotation] = cards
	}
	return p
}

func TestFilter(t *testing.T) {
	nodes := []*v1.Node{gpuNode("a100", "A100", 4), gpuNode("t4", "T4", 2), gpuNode("cpu", "", 0)}
	placed := []*v1.Pod{
		on(gpuPod("busy", 2, nil), "a100", "0,1"),
		on(gpuPod("share", 0, shared(700)), "a100", "2:700"),
		on(gpuPod("t4-share", 0, shared(500)), "t4", "1:500"),
	}
	env := newTestEnv(t, `{}`, nodes, placed)
	for _, tc := range []struct {
		name     string
		pod      *v1.Pod
		feasible []string
		reasons  map[string]string
		codes    map[string]fwk.Code
	}{
		{"one whole card", gpuPod("w1", 1, nil), []string{"a100", "t4"},
			map[string]string{"cpu": "node has no GPUs"}, map[string]fwk.Code{"cpu": fwk.UnschedulableAndUnresolvable}},
		{"two whole cards: a100 has one fully free", gpuPod("w2", 2, nil), nil,
			map[string]string{"a100": "not enough free whole GPUs", "t4": "not enough free whole GPUs"},
			map[string]fwk.Code{"a100": fwk.Unschedulable, "t4": fwk.Unschedulable}},
		{"share fits a partial card", gpuPod("s300", 0, shared(300)), []string{"a100", "t4"}, nil, nil},
		{"share fits only empty cards", gpuPod("s800", 0, shared(800)), []string{"a100", "t4"}, nil, nil},
		{"model by annotation", gpuPod("m", 1, map[string]string{gpu.ModelsAnnotation: "t4"}), []string{"t4"},
			map[string]string{"a100": "GPU model not accepted by the pod"}, map[string]fwk.Code{"a100": fwk.UnschedulableAndUnresolvable}},
		{"pods without GPUs skip the filter", gpuPod("cpu", 0, nil), []string{"a100", "cpu", "t4"}, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			scores, rejected := env.cycle(t, framework.NewCycleState(), tc.pod)
			var feasible []string
			for n := range scores {
				feasible = append(feasible, n)
			}
			assert.ElementsMatch(t, tc.feasible, feasible)
			for node, reason := range tc.reasons {
				require.Contains(t, rejected, node)
				assert.Equal(t, reason, rejected[node].Message())
				assert.Equal(t, tc.codes[node], rejected[node].Code())
			}
		})
	}

	_, rejected := env.cycle(t, framework.NewCycleState(), gpuPod("bad", 1, shared(300)))
	require.Contains(t, rejected, "a100")
	assert.Equal(t, fwk.UnschedulableAndUnresolvable, rejected["a100"].Code())
	assert.Contains(t, rejected["a100"].Message(), "exclusive")
}

func TestScoreFragmentationAware(t *testing.T) {
	// Two 8-card nodes, one half used. The workload mix is mostly 8-card
	// jobs: a one-card pod goes to the half-used node, keeping the empty
	// one whole for the next 8-card job.
	nodes := []*v1.Node{gpuNode("empty", "A100", 8), gpuNode("half", "A100", 8), gpuNode("cpu", "", 0)}
	placed := []*v1.Pod{on(gpuPod("big", 4, nil), "half", "0,1,2,3")}
	env := newTestEnv(t, `{}`, nodes, placed)
	for range 3 {
		env.pl.Workload().Observe(gpu.Demand{Whole: 8, MilliCPU: 1000, Memory: 1 << 30})
	}
	env.pl.Workload().Observe(gpu.Demand{Whole: 1, MilliCPU: 1000, Memory: 1 << 30})
	scores, _ := env.cycle(t, framework.NewCycleState(), gpuPod("one", 1, nil))
	assert.Equal(t, int64(100), scores["half"])
	assert.Less(t, scores["empty"], int64(100))

	// A pod without GPUs is steered to the node without GPUs.
	scores, _ = env.cycle(t, framework.NewCycleState(), gpuPod("web", 0, nil))
	assert.Equal(t, int64(100), scores["cpu"])
	assert.Less(t, scores["empty"], int64(100))
	assert.Less(t, scores["half"], int64(100))
}

func TestSpreadStrategyFromArgs(t *testing.T) {
	nodes := []*v1.Node{gpuNode("empty", "A100", 8), gpuNode("half", "A100", 8)}
	placed := []*v1.Pod{on(gpuPod("big", 4, nil), "half", "0,1,2,3")}
	env := newTestEnv(t, `{"scoringStrategy":{"type":"Spread","resources":[{"name":"nvidia.com/gpu","weight":1}]}}`, nodes, placed)
	scores, _ := env.cycle(t, framework.NewCycleState(), gpuPod("one", 1, nil))
	assert.Equal(t, map[string]int64{"empty": 100, "half": 0}, scores)
}

func TestReserveBooksCardsUntilUnreserve(t *testing.T) {
	nodes := []*v1.Node{gpuNode("n", "A100", 2)}
	env := newTestEnv(t, `{}`, nodes, nil)
	ctx := t.Context()

	first := gpuPod("first", 0, shared(600))
	state := framework.NewCycleState()
	scores, _ := env.cycle(t, state, first)
	require.Contains(t, scores, "n")
	require.True(t, env.pl.Reserve(ctx, state, first, "n").IsSuccess())
	a, ok := env.pl.Reserved(first.UID, "n")
	require.True(t, ok)
	env.assume(t, first, "n")

	// The assumed pod has no annotation yet: the ledger keeps its card.
	second := gpuPod("second", 0, shared(600))
	state2 := framework.NewCycleState()
	scores, _ = env.cycle(t, state2, second)
	require.Contains(t, scores, "n")
	require.True(t, env.pl.Reserve(ctx, state2, second, "n").IsSuccess())
	b, _ := env.pl.Reserved(second.UID, "n")
	assert.NotEqual(t, a.Cards, b.Cards, "two 600 shares cannot share a card")
	env.assume(t, second, "n")

	third := gpuPod("third", 0, shared(600))
	_, rejected := env.cycle(t, framework.NewCycleState(), third)
	require.Contains(t, rejected, "n")
	assert.Equal(t, "no GPU card with the requested free share", rejected["n"].Message())

	// Binding the second failed: Unreserve and the cache's forget free
	// its card.
	env.pl.Unreserve(ctx, state2, second, "n")
	env.remove("second")
	_, ok = env.pl.Reserved(second.UID, "n")
	assert.False(t, ok)
	scores, _ = env.cycle(t, framework.NewCycleState(), third)
	assert.Contains(t, scores, "n")
}

// With a single feasible node the scheduler skips PreScore; Reserve then
// chooses the cards itself.
func TestReserveWithoutPreScore(t *testing.T) {
	env := newTestEnv(t, `{}`, []*v1.Node{gpuNode("n", "A100", 4)}, []*v1.Pod{on(gpuPod("old", 0, shared(500)), "n", "1:500")})
	// Most pods want a whole card: the 500 left on card 1 is a fragment
	// for them, so FGD fills it rather than cut into a whole card.
	for range 5 {
		env.pl.Workload().Observe(gpu.Demand{Whole: 1, MilliCPU: 1000, Memory: 1 << 30})
	}
	pod := gpuPod("p", 0, shared(400))
	state := framework.NewCycleState()
	_, st := env.pl.PreFilter(t.Context(), state, pod, nil)
	require.True(t, st.IsSuccess())
	require.True(t, env.pl.Reserve(t.Context(), state, pod, "n").IsSuccess())
	a, ok := env.pl.Reserved(pod.UID, "n")
	require.True(t, ok)
	assert.Equal(t, "1:400", a.String(), "FGD fills the card whose free share is a fragment")
}

func TestPreBindWritesCards(t *testing.T) {
	pod := gpuPod("p", 2, nil)
	env := newTestEnv(t, `{}`, []*v1.Node{gpuNode("n", "A100", 4)}, []*v1.Pod{on(gpuPod("old", 1, nil), "n", "0")}, pod)
	ctx := t.Context()
	state := framework.NewCycleState()
	env.cycle(t, state, pod)
	require.True(t, env.pl.Reserve(ctx, state, pod, "n").IsSuccess())
	require.True(t, env.pl.PreBindPreFlight(ctx, state, pod, "n").IsSuccess())
	require.True(t, env.pl.PreBind(ctx, state, pod, "n").IsSuccess())
	got, err := env.client.CoreV1().Pods("default").Get(ctx, "p", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "1,2", got.Annotations[gpu.CardsAnnotation])

	// A pod without GPUs skips PreBind.
	cpu := gpuPod("cpu", 0, nil)
	assert.True(t, env.pl.PreBindPreFlight(ctx, framework.NewCycleState(), cpu, "n").IsSkip())

	// The annotation is a contract: failing to write it fails binding.
	ghost := gpuPod("ghost", 1, nil)
	state = framework.NewCycleState()
	env.cycle(t, state, ghost)
	require.True(t, env.pl.Reserve(ctx, state, ghost, "n").IsSuccess())
	st := env.pl.PreBind(ctx, state, ghost, "n")
	assert.Equal(t, fwk.Error, st.Code(), st.Message())
}

// Annotations of bound pods win over the ledger, and the informer's
// deletions clean the ledger.
func TestBookkeepingFollowsInformer(t *testing.T) {
	node := gpuNode("n", "A100", 2)
	pod := gpuPod("p", 1, nil)
	env := newTestEnv(t, `{}`, []*v1.Node{node}, nil, pod)
	ctx := t.Context()
	state := framework.NewCycleState()
	env.cycle(t, state, pod)
	require.True(t, env.pl.Reserve(ctx, state, pod, "n").IsSuccess())
	require.Equal(t, 1, env.pl.ledger.len())

	require.NoError(t, env.client.CoreV1().Pods("default").Delete(ctx, "p", metav1.DeleteOptions{}))
	require.Eventually(t, func() bool { return env.pl.ledger.len() == 0 }, 10*time.Second, 10*time.Millisecond, "pod deletion drops the reservation")

	other := gpuPod("other", 1, nil)
	_, err := env.client.CoreV1().Pods("default").Create(ctx, other, metav1.CreateOptions{})
	require.NoError(t, err)
	state = framework.NewCycleState()
	env.cycle(t, state, other)
	require.True(t, env.pl.Reserve(ctx, state, other, "n").IsSuccess())
	require.NoError(t, env.client.CoreV1().Nodes().Delete(ctx, "n", metav1.DeleteOptions{}))
	require.Eventually(t, func() bool { return env.pl.ledger.len() == 0 }, 10*time.Second, 10*time.Millisecond, "node deletion drops its reservations")
}

func TestNodeStateFromAnnotationsAndLedger(t *testing.T) {
	env := newTestEnv(t, `{}`, []*v1.Node{gpuNode("n", "A100", 4)}, []*v1.Pod{
		on(gpuPod("a", 1, nil), "n", "3"),
		on(gpuPod("b", 0, shared(250)), "n", "1:250"),
		on(gpuPod("c", 0, shared(500)), "n", ""),   // unknown: placed virtually
		on(gpuPod("d", 1, nil), "n", "not-a-card"), // malformed: placed virtually
	})
	state := env.pl.states.get(klog.Background(), env.nodeInfo(t, "n"))
	assert.Equal(t, []int64{500, 750, 0, 0}, state.Free)
	assert.Same(t, state, env.pl.states.get(klog.Background(), env.nodeInfo(t, "n")), "cached while the node is unchanged")
	assert.Equal(t, "A100", state.Model)
	assert.Equal(t, int64(60000), state.FreeMilliCPU)
}

func TestEventsToRegister(t *testing.T) {
	env := newTestEnv(t, `{}`, nil, nil)
	events, err := env.pl.EventsToRegister(t.Context())
	require.NoError(t, err)
	require.Len(t, events, 2)
	logger := klog.Background()
	gpuPending, cpuPending := gpuPod("pending", 1, nil), gpuPod("web", 0, nil)
	deletedGPU, deletedCPU := on(gpuPod("gone", 1, nil), "n", "0"), on(gpuPod("gone-cpu", 0, nil), "n", "")
	for _, tc := range []struct {
		name     string
		hint     fwk.QueueingHintFn
		pod      *v1.Pod
		old, new interface{}
		want     fwk.QueueingHint
	}{
		{"GPU pod deleted", events[0].QueueingHintFn, gpuPending, deletedGPU, nil, fwk.Queue},
		{"CPU pod deleted", events[0].QueueingHintFn, gpuPending, deletedCPU, nil, fwk.QueueSkip},
		{"GPU pod deleted, pending pod needs no GPU", events[0].QueueingHintFn, cpuPending, deletedGPU, nil, fwk.QueueSkip},
		{"unbound pod deleted", events[0].QueueingHintFn, gpuPending, gpuPod("never", 1, nil), nil, fwk.QueueSkip},
		{"GPU node added", events[1].QueueingHintFn, gpuPending, nil, gpuNode("new", "A100", 8), fwk.Queue},
		{"CPU node added", events[1].QueueingHintFn, gpuPending, nil, gpuNode("new", "", 0), fwk.QueueSkip},
	} {
		got, err := tc.hint(logger, tc.pod, tc.old, tc.new)
		require.NoError(t, err, tc.name)
		assert.Equal(t, tc.want, got, tc.name)
	}
}

// dcgmStub answers /api/v1/query with DCGM series per card of node "n".
type dcgmStub struct {
	*httptest.Server
	mu   sync.Mutex
	util map[int]float64 // percent
	used map[int]float64 // MiB; free = 16384 - used
}

func newDCGMStub(t *testing.T, util, used map[int]float64) *dcgmStub {
	s := &dcgmStub{util: util, used: used}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		_ = r.ParseForm()
		q := r.Form.Get("query")
		now := float64(time.Now().UnixMilli()) / 1000
		var series []string
		for card := range 2 {
			var v float64
			switch q {
			case "DCGM_FI_DEV_GPU_UTIL":
				v = s.util[card]
			case "DCGM_FI_DEV_FB_USED":
				v = s.used[card]
			case "DCGM_FI_DEV_FB_FREE":
				v = 16384 - s.used[card]
			}
			series = append(series, fmt.Sprintf(`{"metric":{"Hostname":"n","gpu":"%d"},"value":[%.3f,"%g"]}`, card, now, v))
		}
		fmt.Fprintf(w, `{"status":"success","data":{"resultType":"vector","result":[%s]}}`, strings.Join(series, ","))
	}))
	t.Cleanup(s.Close)
	return s
}

func dcgmArgs(address string) string {
	return fmt.Sprintf(`{"utilization":{"weight":100,"stalenessWindow":"30s","prometheus":{"address":%q,"refreshInterval":"100ms","timeout":"100ms"}}}`, address)
}

func TestDCGMSteersSharedPods(t *testing.T) {
	// Card 0 is busy, card 1 idle; both have the same free share, so
	// only measured load tells them apart.
	stub := newDCGMStub(t, map[int]float64{0: 90, 1: 5}, map[int]float64{0: 4096, 1: 4096})
	env := newTestEnv(t, dcgmArgs(stub.URL), []*v1.Node{gpuNode("n", "A100", 2), gpuNode("m", "A100", 2)}, nil)
	require.Eventually(t, func() bool {
		_, ok := env.pl.pipeline.Snapshot().Get("n", cardResource(1, measureFB))
		return ok
	}, 10*time.Second, 10*time.Millisecond)

	pod := gpuPod("s", 0, shared(500))
	state := framework.NewCycleState()
	scores, _ := env.cycle(t, state, pod)
	ps, _ := readState[*preScoreState](state, preScoreStateKey)
	assert.Equal(t, "1:500", ps.byNode["n"].assignment.String(), "the idle card")
	assert.InDelta(t, 0.95, ps.byNode["n"].idleness, 1e-9)
	assert.Equal(t, NeutralUtilization, ps.byNode["m"].idleness, "no data is neutral")
	assert.Equal(t, int64(100), scores["n"])

	// A card whose measured free framebuffer is below the pod's share is
	// hidden from it.
	stub.mu.Lock()
	stub.used = map[int]float64{0: 16000, 1: 12000}
	stub.mu.Unlock()
	require.Eventually(t, func() bool {
		s, ok := env.pl.pipeline.Snapshot().Get("n", cardResource(1, measureFB))
		return ok && s.Value > 0.7
	}, 10*time.Second, 10*time.Millisecond)
	_, rejected := env.cycle(t, framework.NewCycleState(), pod)
	require.Contains(t, rejected, "n")
	assert.Equal(t, "no GPU card with enough measured free memory", rejected["n"].Message())
	scores, _ = env.cycle(t, framework.NewCycleState(), gpuPod("small", 0, shared(200)))
	assert.Contains(t, scores, "n", "a 200 share fits in 25% free framebuffer")
}

func TestDCGMStaleIsNeutral(t *testing.T) {
	stub := newDCGMStub(t, map[int]float64{0: 90, 1: 5}, map[int]float64{0: 16000, 1: 16000})
	env := newTestEnv(t, dcgmArgs(stub.URL), []*v1.Node{gpuNode("n", "A100", 2)}, nil)
	require.Eventually(t, func() bool {
		_, ok := env.pl.pipeline.Snapshot().Get("n", cardResource(0, measureFB))
		return ok
	}, 10*time.Second, 10*time.Millisecond)
	stub.Close() // Prometheus gone

	// A snapshot past the window sees nothing: no card hidden, neutral load.
	s := &preFilterState{demand: gpu.Demand{Milli: 500}, load: staleSnapshot(env.pl.pipeline.Snapshot()), hasLoad: true}
	n := env.pl.cardsForPod(s, env.pl.states.get(klog.Background(), env.nodeInfo(t, "n")), env.nodes["n"])
	assert.Equal(t, []int64{1000, 1000}, n.Free)
	assert.False(t, loadOf(s.load, env.nodes["n"], 0).utilKnown)
}

func staleSnapshot(s utilization.Snapshot) utilization.Snapshot {
	s.At = s.At.Add(time.Hour)
	return s
}
