package gpu

// Fragmentation is the expected fragmentation of a node, in thousandths of
// a card, for a pod drawn from dist (after Weng et al., USENIX ATC 2023,
// §3): for one kind of pod, the fragments are the free GPU capacity that
// pods of that kind could not use; the node's fragmentation is their
// expectation over the mix.
//
// The paper asks whether one more pod of the kind fits: if not (too little
// CPU, a model it does not accept, too few free cards) every free share is
// a fragment, else the cards too small for it. Here the question is how
// much of the free capacity pods of the kind could take if the node were
// filled with them; the rest is fragments:
//   - a kind that needs no GPU, or does not accept the node's model, takes
//     nothing;
//   - k-card pods take k cards each, as many as the fully free cards and
//     the free CPU allow;
//   - pods of share s take s each, as many as the cards (⌊free/s⌋ per card)
//     and the free CPU allow.
//
// With CPU to spare and one card per pod this is the paper's measure. It
// differs only where the paper's one-pod test sees no fragment although
// the kind could not use the capacity: free cards beyond what the free CPU
// can feed (the paper counts them only once the CPU is below one pod, so
// placements drain the CPU of nodes with free cards unchecked; on the openb
// trace this strands most of the GPUs that stay unallocated), what is left
// of a card after as many shares as fit, and free cards beyond a multiple
// of k. Memory is not considered, as in the paper: on the trace CPU binds,
// and counting memory too placed fewer GPUs (docs/benchmarks.md).
//
// It is zero for a node with nothing free and at most the node's free
// capacity.
func Fragmentation(n *NodeState, dist *Distribution) float64 {
	total := n.FreeMilli()
	if total == 0 || dist == nil {
		return 0
	}
	var frag float64
	for i := range dist.shapes {
		s := &dist.shapes[i]
		slots, per := shapeSlots(n, s)
		if slots == 0 {
			frag += s.prob * float64(total)
			continue
		}
		for _, h := range s.hosts {
			fit := slots
			if h.milliCPU > 0 && h.milliCPU*slots > n.FreeMilliCPU { // the CPU binds
				fit = max(n.FreeMilliCPU, 0) / h.milliCPU
			}
			frag += h.prob * float64(total-fit*per)
		}
	}
	return frag
}

// FragmentationOf is the fragmentation of a node for one kind of pod.
func FragmentationOf(n *NodeState, d Demand) int64 {
	dist := NewDistribution(map[Class]int{ClassOf(d): 1})
	return int64(Fragmentation(n, dist) + 0.5)
}

// shapeSlots is how many pods of shape s the node's cards could take, CPU
// aside, and the share each takes.
func shapeSlots(n *NodeState, s *shape) (slots, per int64) {
	if s.whole == 0 && s.milli == 0 || !acceptsModel(s.models, n.Model) {
		return 0, 0
	}
	if s.milli > 0 {
		for _, f := range n.Free {
			if f >= s.milli {
				slots += f / s.milli
			}
		}
		return slots, s.milli
	}
	return int64(n.FullyFree() / s.whole), int64(s.whole) * MilliPerCard
}
