// Package gpu is the HarbormasterGPU scheduler plugin: GPU-aware filtering
// and fragmentation-aware placement of whole-GPU and shared-GPU pods, with
// per-card bookkeeping and the chosen cards written on the pod for the
// device plugin. The decisions are pkg/gpu's pure functions; this package
// adapts them to the scheduling framework. See docs/gpu.md.
package gpu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"
	schedutil "k8s.io/kubernetes/pkg/scheduler/util"
	"k8s.io/utils/clock"

	"github.com/harbormaster-dev/harbormaster/pkg/gpu"
	"github.com/harbormaster-dev/harbormaster/pkg/plugins/apis/config"
	"github.com/harbormaster-dev/harbormaster/pkg/utilization"
)

// Name is the plugin's name in KubeSchedulerConfiguration.
const Name = "HarbormasterGPU"

const (
	preFilterStateKey fwk.StateKey = "PreFilter" + Name
	preScoreStateKey  fwk.StateKey = "PreScore" + Name
)

// NeutralUtilization is the idleness assumed for a card whose load is
// unknown: the middle, so missing data neither attracts nor repels.
const NeutralUtilization = 0.5

// Plugin places pods on GPU nodes and cards.
type Plugin struct {
	handle         framework.Handle
	args           *config.GPUArgs
	strategy       gpu.Strategy
	weights        gpu.Weights
	penalty        float64 // fraction of the score range
	utilWeight     float64 // fraction of a shared pod's score
	filterOnMemory bool
	randomSeed     uint64

	mix      *gpu.WorkloadMix
	ledger   *ledger
	states   *nodeStates
	pipeline *utilization.Pipeline // nil without a DCGM source

	handlers  []handlerRegistration
	closeOnce sync.Once
}

type handlerRegistration struct {
	informer cache.SharedIndexInformer
	handle   cache.ResourceEventHandlerRegistration
}

var (
	_ framework.PreFilterPlugin   = &Plugin{}
	_ framework.FilterPlugin      = &Plugin{}
	_ framework.PreScorePlugin    = &Plugin{}
	_ framework.ScorePlugin       = &Plugin{}
	_ framework.ReservePlugin     = &Plugin{}
	_ framework.PreBindPlugin     = &Plugin{}
	_ framework.EnqueueExtensions = &Plugin{}
)

// Options are dependencies the scheduler's config file cannot express.
type Options struct {
	// MetricsRegisterer receives the DCGM pipeline's metrics, labelled with
	// the profile. Nil keeps them unexported.
	MetricsRegisterer prometheus.Registerer
	// Clock drives staleness and refreshes; nil is real time.
	Clock clock.WithTicker
	// Workload, if set, is the mix the plugin scores against and the
	// caller observes pods into (the simulator does, in arrival order).
	// Nil makes the plugin learn it from pods of its profile as the pod
	// informer first sees them.
	Workload *gpu.WorkloadMix
	// RandomSeed seeds the Random strategy.
	RandomSeed uint64
}

// New is the plugin factory with default options.
func New(ctx context.Context, obj runtime.Object, h framework.Handle) (framework.Plugin, error) {
	return Factory(Options{})(ctx, obj, h)
}

// Factory returns a plugin factory using opts.
func Factory(opts Options) frameworkruntime.PluginFactory {
	return func(ctx context.Context, obj runtime.Object, h framework.Handle) (framework.Plugin, error) {
		return newPlugin(ctx, obj, h, opts)
	}
}

func newPlugin(ctx context.Context, obj runtime.Object, h framework.Handle, opts Options) (*Plugin, error) {
	logger := klog.FromContext(ctx).WithValues("plugin", Name)
	args, err := config.DecodeGPUArgs(obj)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", Name, err)
	}
	pl := &Plugin{
		handle:         h,
		args:           args,
		strategy:       gpu.Strategies()[gpu.StrategyName(args.ScoringStrategy.Type)],
		penalty:        float64(*args.NonGPUPodPenalty) / 100,
		utilWeight:     float64(*args.Utilization.Weight) / 100,
		filterOnMemory: *args.Utilization.FilterOnMemory,
		randomSeed:     opts.RandomSeed,
		mix:            opts.Workload,
		ledger:         newLedger(),
	}
	pl.states = newNodeStates(pl.ledger)
	for _, r := range args.ScoringStrategy.Resources {
		switch r.Name {
		case config.GPUResourceGPU:
			pl.weights.GPU = float64(r.Weight)
		case config.GPUResourceCPU:
			pl.weights.CPU = float64(r.Weight)
		case config.GPUResourceMemory:
			pl.weights.Memory = float64(r.Weight)
		}
	}
	profile := ""
	if p, ok := h.(interface{ ProfileName() string }); ok {
		profile = p.ProfileName()
	}
	learn := pl.mix == nil
	if learn {
		pl.mix = gpu.NewWorkloadMix(int(*args.Workload.Window))
	}
	if err := pl.buildPipeline(logger, args, opts, profile); err != nil {
		return nil, fmt.Errorf("%s: %w", Name, err)
	}
	if err := pl.watch(h, profile, learn); err != nil {
		_ = pl.Close()
		return nil, fmt.Errorf("%s: %w", Name, err)
	}
	if pl.pipeline != nil {
		// Refreshers run on every replica, leader or not, so a new leader
		// starts with warm data; they stop with ctx or Close.
		pl.pipeline.Start(klog.NewContext(ctx, logger))
	}
	logger.V(2).Info("Plugin created", "strategy", args.ScoringStrategy.Type, "learnsWorkload", learn,
		"dcgm", pl.pipeline != nil, "nonGPUPodPenalty", *args.NonGPUPodPenalty)
	return pl, nil
}

func (pl *Plugin) buildPipeline(logger klog.Logger, args *config.GPUArgs, opts Options, profile string) error {
	p := args.Utilization.Prometheus
	if p == nil {
		return nil
	}
	clk := opts.Clock
	if clk == nil {
		clk = clock.RealClock{}
	}
	src, err := NewDCGMSource(DCGMConfig{
		Address: p.Address, Util: p.Queries[config.DCGMQueryUtil], FBUsed: p.Queries[config.DCGMQueryFBUsed],
		FBFree: p.Queries[config.DCGMQueryFBFree], NodeLabels: p.NodeLabels, CardLabel: p.CardLabel, Clock: clk,
	})
	if err != nil {
		return err
	}
	po := utilization.PipelineOptions{
		Window:  args.Utilization.StalenessWindow.Duration,
		Sources: []utilization.SourceSpec{{Source: src, Interval: p.RefreshInterval.Duration, Timeout: p.Timeout.Duration}},
		Clock:   clk,
	}
	pl.pipeline, err = utilization.NewPluginPipeline(logger, po, opts.MetricsRegisterer, profile, Name)
	return err
}

// watch subscribes to the informers: pods to learn the workload mix and
// to drop ledger entries of deleted pods, nodes to drop deleted nodes.
func (pl *Plugin) watch(h framework.Handle, profile string, learn bool) error {
	informers := h.SharedInformerFactory()
	if informers == nil {
		return errors.New("the framework handle has no informer factory")
	}
	pods := informers.Core().V1().Pods().Informer()
	reg, err := pods.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj interface{}) {
			p, ok := obj.(*v1.Pod)
			if !ok || !learn || (profile != "" && p.Spec.SchedulerName != profile) {
				return
			}
			if d, err := gpu.DemandOf(p); err == nil {
				pl.mix.Observe(d)
			}
		},
		DeleteFunc: func(obj interface{}) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if p, ok := obj.(*v1.Pod); ok {
				pl.ledger.forget(p.UID)
			}
		},
	})
	if err != nil {
		return fmt.Errorf("watching pods: %w", err)
	}
	pl.handlers = append(pl.handlers, handlerRegistration{pods, reg})
	nodes := informers.Core().V1().Nodes().Informer()
	reg, err = nodes.AddEventHandler(cache.ResourceEventHandlerFuncs{
		DeleteFunc: func(obj interface{}) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if n, ok := obj.(*v1.Node); ok {
				pl.ledger.forgetNode(n.Name)
				pl.states.forget(n.Name)
			}
		},
	})
	if err != nil {
		return fmt.Errorf("watching nodes: %w", err)
	}
	pl.handlers = append(pl.handlers, handlerRegistration{nodes, reg})
	return nil
}

// Name implements framework.Plugin.
func (pl *Plugin) Name() string { return Name }

// Close stops the DCGM refresher and the informer handlers.
func (pl *Plugin) Close() error {
	var errs []error
	pl.closeOnce.Do(func() {
		if pl.pipeline != nil {
			pl.pipeline.Stop()
		}
		for _, r := range pl.handlers {
			errs = append(errs, r.informer.RemoveEventHandler(r.handle))
		}
	})
	return errors.Join(errs...)
}

// Workload is the mix the plugin scores against.
func (pl *Plugin) Workload() *gpu.WorkloadMix { return pl.mix }

// Reserved returns the cards reserved for a pod on node, if any.
func (pl *Plugin) Reserved(uid types.UID, node string) (gpu.Assignment, bool) {
	return pl.ledger.lookup(uid, node)
}

// preFilterState is the pod's demand, read once per cycle.
type preFilterState struct {
	demand gpu.Demand
	// load is the cycle's DCGM snapshot, for shared pods only.
	load    utilization.Snapshot
	hasLoad bool
}

// Clone shares the state: it is never modified after PreFilter.
func (s *preFilterState) Clone() fwk.StateData { return s }

// placement is one node's best placement and its score.
type placement struct {
	assignment gpu.Assignment
	score      int64
	raw        float64 // the strategy's score before normalisation
	idleness   float64 // of the chosen card, NeutralUtilization if unknown
}

type preScoreState struct {
	byNode map[string]*placement
}

// Clone shares the state: it is never modified after PreScore.
func (s *preScoreState) Clone() fwk.StateData { return s }

func readState[T fwk.StateData](state fwk.CycleState, key fwk.StateKey) (T, bool) {
	var zero T
	data, err := state.Read(key)
	if err != nil {
		return zero, false
	}
	s, ok := data.(T)
	return s, ok
}

// PreFilter reads the pod's demand once, and for a shared pod the cycle's
// DCGM snapshot. A malformed GPU request is unresolvable. Pods without
// GPUs skip Filter (PreScore still steers them).
func (pl *Plugin) PreFilter(_ context.Context, state fwk.CycleState, pod *v1.Pod, _ []fwk.NodeInfo) (*framework.PreFilterResult, *fwk.Status) {
	d, err := gpu.DemandOf(pod)
	if err != nil {
		return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable, err.Error())
	}
	s := &preFilterState{demand: d}
	if d.IsShared() && pl.pipeline != nil {
		s.load, s.hasLoad = pl.pipeline.Snapshot(), true
	}
	state.Write(preFilterStateKey, s)
	if !d.IsGPU() {
		return nil, fwk.NewStatus(fwk.Skip)
	}
	return nil, nil
}

// PreFilterExtensions returns nil: node states are read from the NodeInfo
// Filter receives, which preemption has already edited.
func (pl *Plugin) PreFilterExtensions() framework.PreFilterExtensions { return nil }

func (pl *Plugin) demandOf(state fwk.CycleState, pod *v1.Pod) (*preFilterState, error) {
	if s, ok := readState[*preFilterState](state, preFilterStateKey); ok {
		return s, nil
	}
	d, err := gpu.DemandOf(pod)
	return &preFilterState{demand: d}, err
}

// Filter checks the node's model and cards. A model mismatch or a node
// without GPUs cannot be fixed by preemption; too few free cards can.
func (pl *Plugin) Filter(ctx context.Context, state fwk.CycleState, pod *v1.Pod, nodeInfo fwk.NodeInfo) *fwk.Status {
	s, err := pl.demandOf(state, pod)
	if err != nil {
		return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, err.Error())
	}
	n := pl.states.get(klog.FromContext(ctx), nodeInfo)
	switch reason := pl.cardsForPod(s, n, nodeInfo.Node()).FitGPU(s.demand); reason {
	case gpu.Fits:
		return nil
	case gpu.ReasonModel, gpu.ReasonNoGPU:
		return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, string(reason))
	default:
		if n.FitGPU(s.demand) == gpu.Fits {
			// Only the cards hidden for their measured memory were left.
			reason = gpu.ReasonCardMemory
		}
		return fwk.NewStatus(fwk.Unschedulable, string(reason))
	}
}

// cardsForPod hides from a shared pod the cards whose measured free
// framebuffer is below its share of the card; unknown load hides nothing.
func (pl *Plugin) cardsForPod(s *preFilterState, n *gpu.NodeState, node *v1.Node) *gpu.NodeState {
	if !s.hasLoad || !pl.filterOnMemory {
		return n
	}
	return n.WithoutShortMemory(s.demand, func(card int) (float64, bool) {
		l := loadOf(s.load, node, card)
		return 1 - l.fb, l.fbKnown
	})
}

// PreScore finds every candidate's best placement once and scores it: the
// strategy's raw scores scaled to [0, 1] across the candidates (see
// gpu.Strategy.Scale01), blended for shared pods with the chosen card's
// measured idleness, less the non-GPU pod penalty on GPU nodes, then
// normalised with gpu.Normalize.
func (pl *Plugin) PreScore(ctx context.Context, state fwk.CycleState, pod *v1.Pod, nodes []fwk.NodeInfo) *fwk.Status {
	if len(nodes) == 0 {
		return fwk.NewStatus(fwk.Skip)
	}
	s, err := pl.demandOf(state, pod)
	if err != nil {
		return fwk.AsStatus(err)
	}
	logger := klog.FromContext(ctx)
	states := make([]*gpu.NodeState, len(nodes))
	pl.handle.Parallelizer().Until(ctx, len(nodes), func(i int) {
		states[i] = pl.cardsForPod(s, pl.states.get(logger, nodes[i]), nodes[i].Node())
	}, Name)
	dist, scale, key := pl.mix.Distribution(), gpu.ScaleOf(states), pl.randomKey(pod)
	results := make([]placement, len(nodes))
	fits := make([]bool, len(nodes))
	pl.handle.Parallelizer().Until(ctx, len(nodes), func(i int) {
		in := &gpu.Input{Before: states[i], Demand: s.demand, Dist: dist, Weights: pl.weights, Scale: scale, RandomKey: key}
		a, raw, ok := gpu.Best(pl.strategy.Score, in)
		results[i], fits[i] = placement{assignment: a, raw: raw, idleness: NeutralUtilization}, ok
		if ok && s.hasLoad && s.demand.IsShared() {
			results[i].assignment, results[i].idleness = idlestEquivalentCard(states[i], a, s.load, nodes[i].Node())
		}
	}, Name)

	var raw []float64
	for i := range results {
		if fits[i] {
			raw = append(raw, results[i].raw)
		}
	}
	scaled := pl.strategy.Scale01(raw)
	blended := make([]float64, len(nodes))
	for i := range results {
		if !fits[i] {
			blended[i] = -2 // below any fitting node; Filter should have removed it
			continue
		}
		v := scaled[0]
		scaled = scaled[1:]
		if s.demand.IsShared() {
			v = (1-pl.utilWeight)*v + pl.utilWeight*results[i].idleness
		}
		if !s.demand.IsGPU() && states[i].HasGPU() {
			v -= pl.penalty
		}
		blended[i] = v
	}
	scores := gpu.Normalize(blended)
	ps := &preScoreState{byNode: make(map[string]*placement, len(nodes))}
	for i := range results {
		results[i].score = scores[i]
		ps.byNode[nodes[i].Node().Name] = &results[i]
	}
	state.Write(preScoreStateKey, ps)
	return nil
}

// idlestEquivalentCard moves a shared pod's assignment to the least busy
// card with the same free share: such cards are interchangeable for every
// strategy, so measured load alone chooses among them. It returns the
// card's idleness, NeutralUtilization when unknown.
func idlestEquivalentCard(n *gpu.NodeState, a gpu.Assignment, load utilization.Snapshot, node *v1.Node) (gpu.Assignment, float64) {
	idleness := func(card int) float64 {
		if l := loadOf(load, node, card); l.utilKnown {
			return 1 - l.util
		}
		return NeutralUtilization
	}
	best, bestIdle := a.Cards[0], idleness(a.Cards[0])
	for card, free := range n.Free {
		if free == n.Free[best] && idleness(card) > bestIdle {
			best, bestIdle = card, idleness(card)
		}
	}
	return gpu.Assignment{Cards: []int{best}, Milli: a.Milli}, bestIdle
}

func (pl *Plugin) randomKey(pod *v1.Pod) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(pod.UID))
	_, _ = h.Write([]byte(pod.Namespace + "/" + pod.Name))
	return h.Sum64() ^ pl.randomSeed
}

// Score returns the node's score from PreScore; a node PreScore did not
// see is neutral.
func (pl *Plugin) Score(_ context.Context, state fwk.CycleState, _ *v1.Pod, nodeInfo fwk.NodeInfo) (int64, *fwk.Status) {
	if s, ok := readState[*preScoreState](state, preScoreStateKey); ok {
		if p, ok := s.byNode[nodeInfo.Node().Name]; ok {
			return p.score, nil
		}
	}
	return framework.MaxNodeScore / 2, nil
}

// ScoreExtensions returns nil: PreScore already normalised the scores.
func (pl *Plugin) ScoreExtensions() framework.ScoreExtensions { return nil }

// Reserve chooses the pod's cards on the node, from PreScore when it ran
// (it does not when a single node was feasible), and books them.
func (pl *Plugin) Reserve(ctx context.Context, state fwk.CycleState, pod *v1.Pod, nodeName string) *fwk.Status {
	s, err := pl.demandOf(state, pod)
	if err != nil {
		return fwk.AsStatus(err)
	}
	if !s.demand.IsGPU() {
		return nil
	}
	var a gpu.Assignment
	if ps, ok := readState[*preScoreState](state, preScoreStateKey); ok && ps.byNode[nodeName] != nil && !ps.byNode[nodeName].assignment.IsZero() {
		a = ps.byNode[nodeName].assignment
	} else {
		ni, err := pl.handle.SnapshotSharedLister().NodeInfos().Get(nodeName)
		if err != nil {
			return fwk.AsStatus(fmt.Errorf("reserving GPU cards: %w", err))
		}
		n := pl.cardsForPod(s, pl.states.get(klog.FromContext(ctx), ni), ni.Node())
		in := &gpu.Input{Before: n, Demand: s.demand, Dist: pl.mix.Distribution(), Weights: pl.weights,
			Scale: gpu.ScaleOf([]*gpu.NodeState{n}), RandomKey: pl.randomKey(pod)}
		var ok bool
		if a, _, ok = gpu.Best(pl.strategy.Score, in); !ok {
			return fwk.NewStatus(fwk.Unschedulable, string(n.FitGPU(s.demand)))
		}
	}
	pl.ledger.reserve(pod.UID, nodeName, a)
	klog.FromContext(ctx).V(4).Info("Reserved GPU cards", "pod", klog.KObj(pod), "node", nodeName, "cards", a.String())
	return nil
}

// Unreserve releases the cards booked in Reserve.
func (pl *Plugin) Unreserve(ctx context.Context, _ fwk.CycleState, pod *v1.Pod, nodeName string) {
	if _, ok := pl.ledger.lookup(pod.UID, nodeName); ok {
		pl.ledger.unreserve(pod.UID, nodeName)
		klog.FromContext(ctx).V(4).Info("Released GPU cards", "pod", klog.KObj(pod), "node", nodeName)
	}
}

// PreBindPreFlight skips PreBind for pods without GPUs.
func (pl *Plugin) PreBindPreFlight(_ context.Context, _ fwk.CycleState, pod *v1.Pod, nodeName string) *fwk.Status {
	if _, ok := pl.ledger.lookup(pod.UID, nodeName); !ok {
		return fwk.NewStatus(fwk.Skip)
	}
	return nil
}

// PreBind writes the reserved cards to the pod's CardsAnnotation before
// it is bound: the device plugin reads them there. Unlike an explanation,
// this is a contract, so a failed write fails the binding (the pod is
// unreserved and retried) rather than running a pod on cards nobody knows.
func (pl *Plugin) PreBind(ctx context.Context, _ fwk.CycleState, pod *v1.Pod, nodeName string) *fwk.Status {
	a, ok := pl.ledger.lookup(pod.UID, nodeName)
	if !ok {
		return nil
	}
	value := a.String()
	if pod.Annotations[gpu.CardsAnnotation] == value {
		return nil
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{gpu.CardsAnnotation: value}}})
	if err != nil {
		return fwk.AsStatus(err)
	}
	patchCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := pl.handle.ClientSet().CoreV1().Pods(pod.Namespace).Patch(patchCtx, pod.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return fwk.AsStatus(fmt.Errorf("writing %s=%s: %w", gpu.CardsAnnotation, value, err))
	}
	klog.FromContext(ctx).V(4).Info("GPU cards written", "pod", klog.KObj(pod), "node", nodeName, "cards", value)
	return nil
}

// EventsToRegister lists what can make a rejected GPU pod fit: a GPU pod
// leaving its node, or a node added, gaining allocatable or relabelled
// (its model).
func (pl *Plugin) EventsToRegister(_ context.Context) ([]fwk.ClusterEventWithHint, error) {
	return []fwk.ClusterEventWithHint{
		{Event: fwk.ClusterEvent{Resource: fwk.Pod, ActionType: fwk.Delete}, QueueingHintFn: isSchedulableAfterPodDeleted},
		{Event: fwk.ClusterEvent{Resource: fwk.Node, ActionType: fwk.Add | fwk.UpdateNodeAllocatable | fwk.UpdateNodeLabel}, QueueingHintFn: isSchedulableAfterNodeChange},
	}, nil
}

func isSchedulableAfterPodDeleted(logger klog.Logger, pod *v1.Pod, oldObj, newObj interface{}) (fwk.QueueingHint, error) {
	deleted, _, err := schedutil.As[*v1.Pod](oldObj, newObj)
	if err != nil {
		return fwk.Queue, err
	}
	if deleted.Spec.NodeName == "" || !placedDemand(deleted).IsGPU() {
		return fwk.QueueSkip, nil
	}
	if d, err := gpu.DemandOf(pod); err == nil && !d.IsGPU() {
		return fwk.QueueSkip, nil
	}
	logger.V(5).Info("GPU pod deleted; its cards are free", "pod", klog.KObj(pod), "deletedPod", klog.KObj(deleted))
	return fwk.Queue, nil
}

func isSchedulableAfterNodeChange(logger klog.Logger, pod *v1.Pod, oldObj, newObj interface{}) (fwk.QueueingHint, error) {
	_, node, err := schedutil.As[*v1.Node](oldObj, newObj)
	if err != nil {
		return fwk.Queue, err
	}
	if q, ok := node.Status.Allocatable[gpu.ResourceName]; !ok || q.IsZero() {
		return fwk.QueueSkip, nil
	}
	logger.V(5).Info("GPU node added or changed", "pod", klog.KObj(pod), "node", klog.KObj(node))
	return fwk.Queue, nil
}
