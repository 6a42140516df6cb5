// Package loadaware is the HarbormasterLoadAware scheduler plugin: it scores
// nodes by their real utilisation (Prometheus or metrics.k8s.io, through
// pkg/utilization) rather than by requests, and can keep non-critical pods
// off nodes that are measurably hot.
//
// Network I/O happens only in the pipeline's background refreshers and the
// best-effort annotation patch in PreBind. PreScore computes every node's
// score once per cycle from an in-memory snapshot; Score only looks it up.
// Missing, stale or broken data makes a node neutral, never an error.
package loadaware

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"
	schedutil "k8s.io/kubernetes/pkg/scheduler/util"
	metricsclient "k8s.io/metrics/pkg/client/clientset/versioned"
	"k8s.io/utils/clock"

	"github.com/harbormaster-dev/harbormaster/pkg/plugins/apis/config"
	"github.com/harbormaster-dev/harbormaster/pkg/utilization"
)

// Name is the plugin's name in KubeSchedulerConfiguration.
const Name = "HarbormasterLoadAware"

const (
	preFilterStateKey fwk.StateKey = "PreFilter" + Name
	preScoreStateKey  fwk.StateKey = "PreScore" + Name
)

// LoadAware scores nodes by measured utilisation.
type LoadAware struct {
	handle     framework.Handle
	args       *config.LoadAwareArgs
	scorer     *scorer
	pipeline   *utilization.Pipeline
	tracker    *utilization.BindTracker
	thresholds []config.ResourceThreshold
	annotate   bool

	podHandler cache.ResourceEventHandlerRegistration
	podSource  cache.SharedIndexInformer
	closeOnce  sync.Once
}

var (
	_ framework.PreFilterPlugin   = &LoadAware{}
	_ framework.FilterPlugin      = &LoadAware{}
	_ framework.PreScorePlugin    = &LoadAware{}
	_ framework.ScorePlugin       = &LoadAware{}
	_ framework.PreBindPlugin     = &LoadAware{}
	_ framework.EnqueueExtensions = &LoadAware{}
)

// Options are dependencies the scheduler's config file cannot express.
type Options struct {
	// MetricsRegisterer receives the utilisation pipeline's metrics,
	// labelled with the profile name. Nil keeps them unexported.
	MetricsRegisterer prometheus.Registerer
	// Clock drives staleness, refreshes and bind times; nil is real time.
	Clock clock.WithTicker
}

// New is the plugin factory without exported pipeline metrics.
func New(ctx context.Context, obj runtime.Object, h framework.Handle) (framework.Plugin, error) {
	return Factory(Options{})(ctx, obj, h)
}

// Factory returns a plugin factory using opts.
func Factory(opts Options) frameworkruntime.PluginFactory {
	return func(ctx context.Context, obj runtime.Object, h framework.Handle) (framework.Plugin, error) {
		return newPlugin(ctx, obj, h, opts)
	}
}

func newPlugin(ctx context.Context, obj runtime.Object, h framework.Handle, opts Options) (*LoadAware, error) {
	logger := klog.FromContext(ctx).WithValues("plugin", Name)
	args, err := config.DecodeLoadAwareArgs(obj)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", Name, err)
	}
	clk := opts.Clock
	if clk == nil {
		clk = clock.RealClock{}
	}
	informers := h.SharedInformerFactory()
	if informers == nil {
		return nil, fmt.Errorf("%s: the framework handle has no informer factory", Name)
	}
	nodeLister := informers.Core().V1().Nodes().Lister()
	getNode := func(name string) (*v1.Node, bool) {
		n, err := nodeLister.Get(name)
		return n, err == nil
	}

	resources := neededResources(args)
	sources, err := buildSources(args, h, getNode, resources, clk)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", Name, err)
	}
	pipelineOpts := utilization.PipelineOptions{
		Window:    args.StalenessWindow.Duration,
		Sources:   sources,
		Nodes:     func() ([]*v1.Node, error) { return nodeLister.List(labels.Everything()) },
		Resources: resources,
		Clock:     clk,
	}
	profile := ""
	if p, ok := h.(interface{ ProfileName() string }); ok {
		profile = p.ProfileName()
	}
	pipeline, err := utilization.NewPluginPipeline(logger, pipelineOpts, opts.MetricsRegisterer, profile, Name)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", Name, err)
	}

	pl := &LoadAware{
		handle:     h,
		args:       args,
		scorer:     newScorer(args),
		pipeline:   pipeline,
		tracker:    utilization.NewBindTracker(clk),
		thresholds: args.Filter.Thresholds,
		annotate:   *args.AnnotatePods,
	}
	pl.podSource = informers.Core().V1().Pods().Informer()
	pl.podHandler, err = pl.podSource.AddEventHandler(pl.tracker.EventHandler())
	if err != nil {
		pipeline.Stop()
		return nil, fmt.Errorf("%s: watching pod bindings: %w", Name, err)
	}
	// Refreshers run on every replica, leader or not, so a new leader
	// starts with warm data. They stop with ctx or Close.
	pipeline.Start(klog.NewContext(ctx, logger))
	logger.V(2).Info("Plugin created", "strategy", args.ScoringStrategy.Type, "sources", len(sources),
		"stalenessWindow", args.StalenessWindow.Duration, "estimation", args.Estimation.Mode, "filterThresholds", len(pl.thresholds))
	return pl, nil
}

// neededResources are those scored with a positive weight or filtered on.
func neededResources(args *config.LoadAwareArgs) []utilization.Resource {
	need := map[utilization.Resource]bool{}
	for _, r := range args.ScoringStrategy.Resources {
		if r.Weight > 0 {
			need[utilization.Resource(r.Name)] = true
		}
	}
	for _, t := range args.Filter.Thresholds {
		need[utilization.Resource(t.Name)] = true
	}
	var out []utilization.Resource
	for _, r := range utilization.Resources() {
		if need[r] {
			out = append(out, r)
		}
	}
	return out
}

func buildSources(args *config.LoadAwareArgs, h framework.Handle, getNode utilization.NodeGetter, resources []utilization.Resource, clk clock.PassiveClock) ([]utilization.SourceSpec, error) {
	var specs []utilization.SourceSpec
	if p := args.Sources.Prometheus; p != nil {
		queries := map[utilization.Resource]string{}
		for _, r := range resources {
			queries[r] = p.Queries[string(r)]
		}
		src, err := utilization.NewPrometheusSource(utilization.PrometheusConfig{
			Address: p.Address, Queries: queries, NodeLabels: p.NodeLabels, Clock: clk,
		})
		if err != nil {
			return nil, err
		}
		specs = append(specs, utilization.SourceSpec{Source: src, Interval: p.RefreshInterval.Duration, Timeout: p.Timeout.Duration})
	}
	if m := args.Sources.MetricsServer; m != nil {
		cfg := h.KubeConfig()
		if cfg == nil {
			return nil, errors.New("the metrics.k8s.io source needs the scheduler's kubeconfig")
		}
		client, err := metricsclient.NewForConfig(cfg)
		if err != nil {
			return nil, fmt.Errorf("metrics.k8s.io client: %w", err)
		}
		src := utilization.NewNodeMetricsSource(utilization.ListNodeMetrics(client), getNode, resources)
		specs = append(specs, utilization.SourceSpec{Source: src, Interval: m.RefreshInterval.Duration, Timeout: m.Timeout.Duration})
	}
	return specs, nil
}

// Name implements framework.Plugin.
func (pl *LoadAware) Name() string { return Name }

// Close stops the refreshers, unregisters metrics and stops watching pods.
// The scheduler calls it on shutdown.
func (pl *LoadAware) Close() error {
	var err error
	pl.closeOnce.Do(func() {
		pl.pipeline.Stop()
		if pl.podHandler != nil {
			err = pl.podSource.RemoveEventHandler(pl.podHandler)
		}
	})
	return err
}

// Snapshot exposes the utilisation the plugin currently sees (for the GPU
// plugin and for tests).
func (pl *LoadAware) Snapshot() utilization.Snapshot { return pl.pipeline.Snapshot() }

// preFilterState carries the cycle's snapshot to Filter and PreScore, so
// every extension point of one cycle sees the same data.
type preFilterState struct{ snapshot utilization.Snapshot }

// Clone shares the state: it is never modified after PreFilter.
func (s *preFilterState) Clone() fwk.StateData { return s }

// preScoreState holds every candidate's assessment, computed once.
type preScoreState struct {
	assessments map[string]*assessment
}

// Clone shares the state: it is never modified after PreScore.
func (s *preScoreState) Clone() fwk.StateData { return s }

// PreFilter takes the cycle's snapshot, or skips Filter when no threshold
// is configured or the pod is critical.
func (pl *LoadAware) PreFilter(_ context.Context, state fwk.CycleState, pod *v1.Pod, _ []fwk.NodeInfo) (*framework.PreFilterResult, *fwk.Status) {
	if len(pl.thresholds) == 0 || isCritical(pod) {
		return nil, fwk.NewStatus(fwk.Skip)
	}
	state.Write(preFilterStateKey, &preFilterState{snapshot: pl.pipeline.Snapshot()})
	return nil, nil
}

// PreFilterExtensions implements framework.PreFilterPlugin: real
// utilisation does not change when preemption simulates removing pods.
func (pl *LoadAware) PreFilterExtensions() framework.PreFilterExtensions { return nil }

// Filter rejects a node whose measured utilisation is above a threshold.
// Preemption cannot lower measured load, hence UnschedulableAndUnresolvable.
func (pl *LoadAware) Filter(ctx context.Context, state fwk.CycleState, pod *v1.Pod, nodeInfo fwk.NodeInfo) *fwk.Status {
	snap := pl.cycleSnapshot(state)
	r, util, over := overThreshold(nodeInfo.Node(), snap, pl.thresholds)
	if !over {
		return nil
	}
	klog.FromContext(ctx).V(5).Info("Node above utilisation threshold", "pod", klog.KObj(pod), "node", klog.KObj(nodeInfo.Node()), "resource", r, "utilisation", util)
	// The reason is the same for every node so the scheduler can aggregate
	// it in the pod's FailedScheduling event.
	return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, fmt.Sprintf("node %s utilisation above threshold", r))
}

func (pl *LoadAware) cycleSnapshot(state fwk.CycleState) utilization.Snapshot {
	if data, err := state.Read(preFilterStateKey); err == nil {
		if s, ok := data.(*preFilterState); ok {
			return s.snapshot
		}
	}
	return pl.pipeline.Snapshot()
}

// PreScore assesses every candidate once for the cycle.
func (pl *LoadAware) PreScore(ctx context.Context, state fwk.CycleState, pod *v1.Pod, nodes []fwk.NodeInfo) *fwk.Status {
	if len(nodes) == 0 {
		return fwk.NewStatus(fwk.Skip)
	}
	snap := pl.cycleSnapshot(state)
	podUsage := pl.scorer.estimation.podUsage(pod)
	results := make([]assessment, len(nodes))
	pl.handle.Parallelizer().Until(ctx, len(nodes), func(i int) {
		results[i] = pl.scorer.assess(podUsage, nodes[i], snap, pl.tracker.BoundAt)
	}, Name)
	s := &preScoreState{assessments: make(map[string]*assessment, len(nodes))}
	for i := range results {
		s.assessments[results[i].Node] = &results[i]
	}
	state.Write(preScoreStateKey, s)
	return nil
}

func readPreScore(state fwk.CycleState) (*preScoreState, bool) {
	data, err := state.Read(preScoreStateKey)
	if err != nil {
		return nil, false
	}
	s, ok := data.(*preScoreState)
	return s, ok
}

// Score returns the node's score from PreScore. Without one (PreScore did
// not run for this node) the node is neutral rather than an error.
func (pl *LoadAware) Score(_ context.Context, state fwk.CycleState, _ *v1.Pod, nodeInfo fwk.NodeInfo) (int64, *fwk.Status) {
	if s, ok := readPreScore(state); ok {
		if a, ok := s.assessments[nodeInfo.Node().Name]; ok {
			return a.Score, nil
		}
	}
	return NeutralScore, nil
}

// ScoreExtensions returns nil: scores are already on the absolute 0-100
// scale, and min-max normalisation would turn a two-point difference in
// utilisation into the full range, amplifying sampling noise.
func (pl *LoadAware) ScoreExtensions() framework.ScoreExtensions { return nil }

// PreBindPreFlight says whether PreBind has an explanation to record.
func (pl *LoadAware) PreBindPreFlight(_ context.Context, state fwk.CycleState, _ *v1.Pod, _ string) *fwk.Status {
	if _, ok := readPreScore(state); !ok {
		return fwk.NewStatus(fwk.Skip) // a single feasible node is not scored
	}
	return nil
}

// PreBind logs the chosen and runner-up nodes' breakdown at V(4) and, if
// enabled, records it in the pod's annotation. Failing to annotate never
// fails the binding.
func (pl *LoadAware) PreBind(ctx context.Context, state fwk.CycleState, pod *v1.Pod, nodeName string) *fwk.Status {
	s, ok := readPreScore(state)
	if !ok {
		return nil
	}
	chosen, runnerUp, ok := chosenAndRunnerUp(s.assessments, nodeName)
	if !ok {
		return nil
	}
	exp := explain(chosen, runnerUp)
	logger := klog.FromContext(ctx)
	if loggerV := logger.V(4); loggerV.Enabled() {
		loggerV.Info("Load-aware placement", "pod", klog.KObj(pod), "node", nodeName, "score", exp.String())
	}
	if !pl.annotate {
		return nil
	}
	patch, err := annotationPatch(exp)
	if err == nil {
		patchCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_, err = pl.handle.ClientSet().CoreV1().Pods(pod.Namespace).Patch(patchCtx, pod.Name, types.MergePatchType, patch, metav1.PatchOptions{})
	}
	if err != nil {
		logger.V(2).Info("Could not annotate pod with its load-aware score", "pod", klog.KObj(pod), "err", err)
	}
	return nil
}

// EventsToRegister lists what may make a node the Filter rejected
// acceptable: a new node, more allocatable, or an assigned pod leaving (its
// load goes with it). Load falling by itself is no cluster event; such pods
// wait for one of these or the scheduler's periodic flush of unschedulable
// pods.
func (pl *LoadAware) EventsToRegister(_ context.Context) ([]fwk.ClusterEventWithHint, error) {
	return []fwk.ClusterEventWithHint{
		{Event: fwk.ClusterEvent{Resource: fwk.Node, ActionType: fwk.Add | fwk.UpdateNodeAllocatable}},
		{Event: fwk.ClusterEvent{Resource: fwk.Pod, ActionType: fwk.Delete}, QueueingHintFn: isSchedulableAfterPodDeleted},
	}, nil
}

func isSchedulableAfterPodDeleted(logger klog.Logger, pod *v1.Pod, oldObj, newObj interface{}) (fwk.QueueingHint, error) {
	deleted, _, err := schedutil.As[*v1.Pod](oldObj, newObj)
	if err != nil {
		return fwk.Queue, err
	}
	if deleted.Spec.NodeName == "" {
		return fwk.QueueSkip, nil
	}
	logger.V(5).Info("Assigned pod deleted; its node may have cooled down", "pod", klog.KObj(pod), "deletedPod", klog.KObj(deleted))
	return fwk.Queue, nil
}
