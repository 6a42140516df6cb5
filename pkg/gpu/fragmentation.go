package gpu

// Fragmentation is the expected fragmentation of a node, in thousandths of
// a card, for a pod drawn from dist (Weng et al., USENIX ATC 2023, §3).
//
// For one kind of pod, a free share is a fragment if that pod could not
// use it:
//   - if the pod cannot run on the node at all (too little CPU or memory,
//     a model it does not accept, not enough free whole cards or no card
//     with its share free), or needs no GPU, every free share is a
//     fragment;
//   - otherwise the fragments are the cards whose free share is below what
//     the pod needs per card (its share, or a whole card), i.e. the cards
//     it cannot use.
//
// The node's fragmentation is the probability-weighted sum over the mix.
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
		if s.whole == 0 && s.milli == 0 {
			frag += s.prob * float64(total)
			continue
		}
		usable, stranded := shapeOnCards(n, s)
		if !usable {
			frag += s.prob * float64(total)
			continue
		}
		for _, h := range s.hosts {
			if h.milliCPU <= n.FreeMilliCPU && h.memory <= n.FreeMemory {
				frag += h.prob * float64(stranded)
			} else {
				frag += h.prob * float64(total)
			}
		}
	}
	return frag
}

// FragmentationOf is the fragmentation of a node for one kind of pod.
func FragmentationOf(n *NodeState, d Demand) int64 {
	dist := NewDistribution(map[Class]int{ClassOf(d): 1})
	return int64(Fragmentation(n, dist) + 0.5)
}

// shapeOnCards says whether the node's cards and model can take a pod of
// shape s, and how much free share is on cards too small for it.
func shapeOnCards(n *NodeState, s *shape) (usable bool, stranded int64) {
	if !acceptsModel(s.models, n.Model) {
		return false, 0
	}
	need := MilliPerCard
	if s.milli > 0 {
		need = s.milli
	}
	fitting := 0
	for _, f := range n.Free {
		if f >= need {
			fitting++
		} else {
			stranded += f
		}
	}
	if s.milli > 0 {
		return fitting > 0, stranded
	}
	return fitting >= s.whole, stranded
}
