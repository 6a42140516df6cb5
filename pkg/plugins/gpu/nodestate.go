package gpu

import (
	"sync"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/harbormaster-dev/harbormaster/pkg/gpu"
)

// nodeStates turns the scheduler's NodeInfos into gpu.NodeStates. Reading
// every pod's demand on every node in every cycle would dominate the
// plugin's cost, so the last state of each node is kept, keyed by the
// NodeInfo's generation (bumped by the scheduler on any change to the node
// or its pods, including the copies preemption edits) and the ledger's
// version for the node. A state is shared and never modified.
type nodeStates struct {
	ledger *ledger
	mu     sync.Mutex
	byNode map[string]cachedState
}

type cachedState struct {
	generation int64
	version    uint64
	state      *gpu.NodeState
}

func newNodeStates(l *ledger) *nodeStates {
	return &nodeStates{ledger: l, byNode: map[string]cachedState{}}
}

func (c *nodeStates) get(logger klog.Logger, ni fwk.NodeInfo) *gpu.NodeState {
	node := ni.Node()
	gen, ver := ni.GetGeneration(), c.ledger.version(node.Name)
	c.mu.Lock()
	cached, ok := c.byNode[node.Name]
	c.mu.Unlock()
	if ok && cached.generation == gen && cached.version == ver {
		return cached.state
	}
	state := buildNodeState(logger, ni, c.ledger)
	c.mu.Lock()
	c.byNode[node.Name] = cachedState{generation: gen, version: ver, state: state}
	c.mu.Unlock()
	return state
}

func (c *nodeStates) forget(node string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.byNode, node)
}

// buildNodeState reads a node's cards from its pods: their annotation if
// valid, else the ledger, else gpu.Cards places them virtually.
func buildNodeState(logger klog.Logger, ni fwk.NodeInfo, l *ledger) *gpu.NodeState {
	node := ni.Node()
	alloc, requested := ni.GetAllocatable(), ni.GetRequested()
	n := &gpu.NodeState{
		Name:          node.Name,
		Model:         node.Labels[gpu.ModelLabel],
		FreeMilliCPU:  alloc.GetMilliCPU() - requested.GetMilliCPU(),
		FreeMemory:    alloc.GetMemory() - requested.GetMemory(),
		AllocMilliCPU: alloc.GetMilliCPU(),
		AllocMemory:   alloc.GetMemory(),
	}
	cards := int(alloc.GetScalarResources()[gpu.ResourceName])
	var placed []gpu.PlacedPod
	for _, pi := range ni.GetPods() {
		p := pi.GetPod()
		d := placedDemand(p)
		if !d.IsGPU() {
			continue
		}
		pp := gpu.PlacedPod{Key: p.Namespace + "/" + p.Name, Demand: d}
		if raw, ok := p.Annotations[gpu.CardsAnnotation]; ok {
			if a, err := gpu.ParseAssignment(raw); err == nil {
				pp.Assignment = &a
			}
		}
		if pp.Assignment == nil {
			if a, ok := l.lookup(p.UID, node.Name); ok {
				pp.Assignment = &a
			}
		}
		placed = append(placed, pp)
	}
	var problems []string
	n.Free, problems = gpu.Cards(cards, placed)
	if len(problems) > 0 {
		logger.V(4).Info("GPU cards of some pods are unknown or inconsistent; placed them virtually", "node", klog.KObj(node), "problems", problems)
	}
	return n
}

// placedDemand is a placed pod's demand. A malformed share annotation made
// it past the scheduler (another scheduler placed it): its whole GPUs
// still count.
func placedDemand(p *v1.Pod) gpu.Demand {
	d, err := gpu.DemandOf(p)
	if err == nil {
		return d
	}
	var whole int64
	for _, c := range p.Spec.Containers {
		if q, ok := c.Resources.Requests[gpu.ResourceName]; ok {
			whole += q.Value()
		}
	}
	return gpu.Demand{Whole: int(whole)}
}
