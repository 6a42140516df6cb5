package gpusim

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	fwk "k8s.io/kube-scheduler/framework"
	schedulerapi "k8s.io/kubernetes/pkg/scheduler/apis/config"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/defaultbinder"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/noderesources"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/queuesort"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"

	"github.com/harbormaster-dev/harbormaster/pkg/gpu"
	"github.com/harbormaster-dev/harbormaster/pkg/plugins/apis/config"
	gpuplugin "github.com/harbormaster-dev/harbormaster/pkg/plugins/gpu"
)

// Policy is a way of scoring placements in the simulation: one of the
// plugin's strategies, or the default Kubernetes scoring.
type Policy string

// KubernetesDefault scores with the in-tree NodeResourcesFit
// (LeastAllocated on CPU and memory) and NodeResourcesBalancedAllocation,
// the default profile's resource scoring; HarbormasterGPU only filters
// and books cards.
const KubernetesDefault Policy = "Default"

// Policies lists every policy the simulator knows, FGD first.
func Policies() []Policy {
	return []Policy{Policy(gpu.FGD), Policy(gpu.BestFit), Policy(gpu.Packing), Policy(gpu.DotProduct), Policy(gpu.Spread), Policy(gpu.Random), KubernetesDefault}
}

// ParsePolicy accepts a policy name in any case.
func ParsePolicy(s string) (Policy, error) {
	for _, p := range Policies() {
		if strings.EqualFold(string(p), s) {
			return p, nil
		}
	}
	return "", fmt.Errorf("unknown policy %q", s)
}

// Run is one replay's settings.
type Run struct {
	Nodes  []NodeRow
	Pods   []PodRow // in arrival order, already inflated
	Policy Policy
	Seed   uint64
	// Weights of the resource-based strategies; zero means the plugin's
	// defaults.
	Args *config.GPUArgs
	// Parallelism of the framework's filter and score loops.
	Parallelism int
	// ObserveAhead makes the workload mix see every pod before the first
	// is placed, as the paper's FGD knows its target workload in advance;
	// by default the mix is learned in arrival order, as the plugin does.
	ObserveAhead bool
	// Progress, if set, is called after each pod with the count done.
	Progress func(done int)
}

// Point is the cluster after one arrival.
type Point struct {
	// ArrivedMilli is the GPU request of all pods arrived so far, placed
	// or not; AllocatedMilli that of the placed ones.
	ArrivedMilli, AllocatedMilli int64
}

// Result is what one replay measured.
type Result struct {
	Policy        Policy
	Seed          uint64
	CapacityMilli int64
	Curve         []Point // after each pod
	// GPUPods and FailedGPUPods count pods with a GPU request.
	GPUPods, FailedGPUPods int
	FailedCPUPods          int
	// FirstFailure is the index in Curve of the first GPU pod that could
	// not be placed, -1 if none.
	FirstFailure int
	// PlacementTimes are the durations of each scheduling cycle.
	PlacementTimes []time.Duration
}

// Replay places the pods one by one and never removes them, skipping a pod
// that fits nowhere. Each pod goes through the framework's PreFilter,
// Filter on every node, PreScore and Score, the host is chosen as
// kube-scheduler does (highest total, ties at random, seeded), and Reserve
// books its cards; the driver then adds it to the node as the scheduler's
// cache would on assume.
func Replay(ctx context.Context, run Run) (*Result, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	mix := gpu.NewWorkloadMix(int(config.DefaultWorkloadWindow))
	args := run.Args
	if args == nil {
		args = &config.GPUArgs{}
	}
	args = args.DeepCopy()
	if run.Policy != KubernetesDefault {
		if args.ScoringStrategy == nil {
			args.ScoringStrategy = &config.GPUScoringStrategy{}
		}
		args.ScoringStrategy.Type = config.GPUStrategyType(run.Policy)
	}
	if args.Workload != nil && args.Workload.Window != nil {
		mix = gpu.NewWorkloadMix(int(*args.Workload.Window))
	}
	snap := newSnapshot(run.Nodes)
	fw, err := newFramework(ctx, run, args, mix, snap)
	if err != nil {
		return nil, err
	}
	defer func() { _ = fw.Close() }()

	res := &Result{Policy: run.Policy, Seed: run.Seed, FirstFailure: -1}
	for _, n := range run.Nodes {
		res.CapacityMilli += int64(n.GPUs) * gpu.MilliPerCard
	}
	if run.ObserveAhead {
		for i, row := range run.Pods {
			d, err := gpu.DemandOf(podFor(row, i))
			if err != nil {
				return nil, fmt.Errorf("pod %s: %w", row.Name, err)
			}
			mix.Observe(d)
		}
	}
	rng := rand.New(rand.NewPCG(run.Seed, 0x5eed))
	var arrived, allocated int64
	for i, row := range run.Pods {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		pod := podFor(row, i)
		d, err := gpu.DemandOf(pod)
		if err != nil {
			return nil, fmt.Errorf("pod %s: %w", row.Name, err)
		}
		if !run.ObserveAhead {
			mix.Observe(d) // the informer sees a pod before the scheduler places it
		}
		start := time.Now()
		node, err := scheduleOne(ctx, fw, snap, pod, rng)
		res.PlacementTimes = append(res.PlacementTimes, time.Since(start))
		if err != nil {
			return nil, err
		}
		arrived += d.GPUMilli()
		switch {
		case node != "":
			allocated += d.GPUMilli()
			pod.Spec.NodeName = node
			snap.byName[node].AddPod(pod)
		case d.IsGPU():
			res.FailedGPUPods++
			if res.FirstFailure < 0 {
				res.FirstFailure = i
			}
		default:
			res.FailedCPUPods++
		}
		if d.IsGPU() {
			res.GPUPods++
		}
		res.Curve = append(res.Curve, Point{ArrivedMilli: arrived, AllocatedMilli: allocated})
		if run.Progress != nil {
			run.Progress(i + 1)
		}
	}
	return res, nil
}

// scheduleOne runs one scheduling cycle; "" means the pod fits nowhere.
func scheduleOne(ctx context.Context, fw framework.Framework, snap *snapshot, pod *v1.Pod, rng *rand.Rand) (string, error) {
	state := framework.NewCycleState()
	if _, st, _ := fw.RunPreFilterPlugins(ctx, state, pod); !st.IsSuccess() {
		if st.IsRejected() {
			return "", nil
		}
		return "", st.AsError()
	}
	ok := make([]bool, len(snap.list))
	fw.Parallelizer().Until(ctx, len(snap.list), func(i int) {
		ok[i] = fw.RunFilterPlugins(ctx, state, pod, snap.list[i]).IsSuccess()
	}, "Filter")
	var feasible []fwk.NodeInfo
	for i, fits := range ok {
		if fits {
			feasible = append(feasible, snap.list[i])
		}
	}
	var chosen string
	switch len(feasible) {
	case 0:
		return "", nil
	case 1:
		// kube-scheduler does not score a single feasible node.
		chosen = feasible[0].Node().Name
	default:
		if st := fw.RunPreScorePlugins(ctx, state, pod, feasible); !st.IsSuccess() {
			return "", st.AsError()
		}
		scores, st := fw.RunScorePlugins(ctx, state, pod, feasible)
		if !st.IsSuccess() {
			return "", st.AsError()
		}
		chosen = selectHost(scores, rng)
	}
	if st := fw.RunReservePluginsReserve(ctx, state, pod, chosen); !st.IsSuccess() {
		fw.RunReservePluginsUnreserve(ctx, state, pod, chosen)
		if st.IsRejected() {
			return "", nil
		}
		return "", st.AsError()
	}
	return chosen, nil
}

// selectHost picks the highest total score, breaking ties uniformly at
// random by reservoir sampling, as kube-scheduler's selectHost does.
func selectHost(scores []framework.NodePluginScores, rng *rand.Rand) string {
	best, ties := 0, 0
	for i, s := range scores {
		switch {
		case i == 0 || s.TotalScore > scores[best].TotalScore:
			best, ties = i, 1
		case s.TotalScore == scores[best].TotalScore:
			ties++
			if rng.IntN(ties) == 0 {
				best = i
			}
		}
	}
	return scores[best].Name
}

func newFramework(ctx context.Context, run Run, args *config.GPUArgs, mix *gpu.WorkloadMix, snap *snapshot) (framework.Framework, error) {
	registry := plugins.NewInTreeRegistry()
	if err := registry.Register(gpuplugin.Name, gpuplugin.Factory(gpuplugin.Options{Workload: mix, RandomSeed: run.Seed})); err != nil {
		return nil, err
	}
	enabled := func(names ...string) schedulerapi.PluginSet {
		var s schedulerapi.PluginSet
		for _, n := range names {
			s.Enabled = append(s.Enabled, schedulerapi.Plugin{Name: n, Weight: 1})
		}
		return s
	}
	profile := &schedulerapi.KubeSchedulerProfile{
		SchedulerName: "harbormaster-simulator",
		Plugins: &schedulerapi.Plugins{
			QueueSort: enabled(queuesort.Name),
			PreFilter: enabled(noderesources.Name, gpuplugin.Name),
			Filter:    enabled(noderesources.Name, gpuplugin.Name),
			Reserve:   enabled(gpuplugin.Name),
			Bind:      enabled(defaultbinder.Name),
		},
		PluginConfig: []schedulerapi.PluginConfig{
			{Name: gpuplugin.Name, Args: args},
			{Name: noderesources.Name, Args: &schedulerapi.NodeResourcesFitArgs{ScoringStrategy: &schedulerapi.ScoringStrategy{
				Type: schedulerapi.LeastAllocated, Resources: []schedulerapi.ResourceSpec{{Name: "cpu", Weight: 1}, {Name: "memory", Weight: 1}},
			}}},
			{Name: noderesources.BalancedAllocationName, Args: &schedulerapi.NodeResourcesBalancedAllocationArgs{
				Resources: []schedulerapi.ResourceSpec{{Name: "cpu", Weight: 1}, {Name: "memory", Weight: 1}},
			}},
		},
	}
	if run.Policy == KubernetesDefault {
		profile.Plugins.PreScore = enabled(noderesources.Name, noderesources.BalancedAllocationName)
		profile.Plugins.Score = enabled(noderesources.Name, noderesources.BalancedAllocationName)
	} else {
		profile.Plugins.PreScore = enabled(gpuplugin.Name)
		profile.Plugins.Score = enabled(gpuplugin.Name)
	}
	client := fake.NewClientset()
	parallelism := run.Parallelism
	if parallelism <= 0 {
		parallelism = 2
	}
	fw, err := frameworkruntime.NewFramework(ctx, registry, profile,
		frameworkruntime.WithClientSet(client),
		frameworkruntime.WithInformerFactory(informers.NewSharedInformerFactory(client, 0)),
		frameworkruntime.WithSnapshotSharedLister(snap),
		frameworkruntime.WithParallelism(parallelism))
	if err != nil {
		return nil, fmt.Errorf("building the scheduling framework: %w", err)
	}
	return fw, nil
}

func podFor(row PodRow, i int) *v1.Pod {
	reqs := v1.ResourceList{
		v1.ResourceCPU:    *resource.NewMilliQuantity(row.MilliCPU, resource.DecimalSI),
		v1.ResourceMemory: *resource.NewQuantity(row.MemoryMiB<<20, resource.BinarySI),
	}
	annotations := map[string]string{}
	switch {
	case row.NumGPU == 1 && row.GPUMilli < gpu.MilliPerCard:
		annotations[gpu.MilliAnnotation] = fmt.Sprint(row.GPUMilli)
	case row.NumGPU > 0:
		reqs[gpu.ResourceName] = *resource.NewQuantity(int64(row.NumGPU), resource.DecimalSI)
	}
	if row.Models != nil {
		annotations[gpu.ModelsAnnotation] = strings.Join(row.Models, ",")
	}
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: row.Name, Namespace: "openb", UID: types.UID(fmt.Sprintf("openb-%d", i)), Annotations: annotations},
		Spec: v1.PodSpec{
			SchedulerName: "harbormaster-simulator",
			Containers:    []v1.Container{{Name: "main", Resources: v1.ResourceRequirements{Requests: reqs}}},
		},
	}
}

func nodeFor(row NodeRow) *v1.Node {
	alloc := v1.ResourceList{
		v1.ResourceCPU:    *resource.NewMilliQuantity(row.MilliCPU, resource.DecimalSI),
		v1.ResourceMemory: *resource.NewQuantity(row.MemoryMiB<<20, resource.BinarySI),
		// Pods never leave; the pod count must not be what fills a node.
		v1.ResourcePods: *resource.NewQuantity(100000, resource.DecimalSI),
	}
	labels := map[string]string{v1.LabelHostname: row.Name}
	if row.GPUs > 0 {
		alloc[gpu.ResourceName] = *resource.NewQuantity(int64(row.GPUs), resource.DecimalSI)
		labels[gpu.ModelLabel] = row.Model
	}
	return &v1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: row.Name, Labels: labels},
		Status:     v1.NodeStatus{Capacity: alloc, Allocatable: alloc.DeepCopy()},
	}
}

// snapshot is the scheduler's view of the simulated cluster; the driver
// adds placed pods to it.
type snapshot struct {
	list   []fwk.NodeInfo
	byName map[string]*framework.NodeInfo
}

func newSnapshot(rows []NodeRow) *snapshot {
	s := &snapshot{byName: make(map[string]*framework.NodeInfo, len(rows))}
	for _, r := range rows {
		ni := framework.NewNodeInfo()
		ni.SetNode(nodeFor(r))
		s.list = append(s.list, ni)
		s.byName[r.Name] = ni
	}
	return s
}

var errNoNode = errors.New("node not found")

func (s *snapshot) NodeInfos() framework.NodeInfoLister       { return s }
func (s *snapshot) StorageInfos() framework.StorageInfoLister { return s }
func (s *snapshot) List() ([]fwk.NodeInfo, error)             { return s.list, nil }
func (s *snapshot) HavePodsWithAffinityList() ([]fwk.NodeInfo, error) {
	return nil, nil
}
func (s *snapshot) HavePodsWithRequiredAntiAffinityList() ([]fwk.NodeInfo, error) {
	return nil, nil
}
func (s *snapshot) Get(name string) (fwk.NodeInfo, error) {
	if ni, ok := s.byName[name]; ok {
		return ni, nil
	}
	return nil, fmt.Errorf("%w: %s", errNoNode, name)
}
func (s *snapshot) IsPVCUsedByPods(string) bool { return false }
