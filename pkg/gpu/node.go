package gpu

import "slices"

// NodeState is what placement needs to know about a node: its model, the
// free share of each card, and its free and allocatable CPU and memory.
type NodeState struct {
	Name  string
	Model string
	// Free is the free share of each card, indexed by card.
	Free []int64
	// FreeMilliCPU and FreeMemory are allocatable minus requested.
	FreeMilliCPU, FreeMemory int64
	// AllocMilliCPU and AllocMemory are the node's allocatable.
	AllocMilliCPU, AllocMemory int64
}

// HasGPU reports whether the node has any card.
func (n *NodeState) HasGPU() bool { return len(n.Free) > 0 }

// FreeMilli is the node's free GPU capacity in thousandths of a card.
func (n *NodeState) FreeMilli() int64 {
	var sum int64
	for _, f := range n.Free {
		sum += f
	}
	return sum
}

// CapacityMilli is the node's GPU capacity in thousandths of a card.
func (n *NodeState) CapacityMilli() int64 { return int64(len(n.Free)) * MilliPerCard }

// FullyFree counts the cards nobody holds.
func (n *NodeState) FullyFree() int {
	c := 0
	for _, f := range n.Free {
		if f == MilliPerCard {
			c++
		}
	}
	return c
}

// Reason says why a pod does not fit a node; "" means it fits.
type Reason string

// Reasons a pod does not fit. Each is the same for every node so the
// scheduler can aggregate them in a pod's FailedScheduling event.
const (
	Fits             Reason = ""
	ReasonNoGPU      Reason = "node has no GPUs"
	ReasonModel      Reason = "GPU model not accepted by the pod"
	ReasonWholeCards Reason = "not enough free whole GPUs"
	ReasonSharedCard Reason = "no GPU card with the requested free share"
	ReasonCPU        Reason = "insufficient cpu"
	ReasonMemory     Reason = "insufficient memory"
	ReasonCardMemory Reason = "no GPU card with enough measured free memory"
)

// FitGPU checks the GPU side of a demand: model and per-card capacity.
// CPU and memory are the NodeResourcesFit plugin's business in the
// scheduler; Fit checks them too, for fragmentation and simulation.
func (n *NodeState) FitGPU(d Demand) Reason {
	if !d.IsGPU() {
		return Fits
	}
	if !n.HasGPU() {
		return ReasonNoGPU
	}
	if !d.AcceptsModel(n.Model) {
		return ReasonModel
	}
	if d.IsShared() {
		for _, f := range n.Free {
			if f >= d.Milli {
				return Fits
			}
		}
		return ReasonSharedCard
	}
	if n.FullyFree() < d.Whole {
		return ReasonWholeCards
	}
	return Fits
}

// Fit checks every dimension of a demand.
func (n *NodeState) Fit(d Demand) Reason {
	if d.MilliCPU > n.FreeMilliCPU {
		return ReasonCPU
	}
	if d.Memory > n.FreeMemory {
		return ReasonMemory
	}
	return n.FitGPU(d)
}

// Candidates lists the distinct ways d can be placed on the node's cards.
// Whole cards are interchangeable, so a whole-GPU pod has one candidate:
// the lowest-numbered free cards. A shared pod has one candidate per
// distinct free share that fits, on the lowest-numbered card with it:
// cards with equal free shares are interchangeable too. A pod without
// GPUs has the single empty assignment.
func (n *NodeState) Candidates(d Demand) []Assignment {
	if !d.IsGPU() {
		return []Assignment{{}}
	}
	if n.FitGPU(d) != Fits {
		return nil
	}
	if !d.IsShared() {
		a := Assignment{Milli: MilliPerCard}
		for i, f := range n.Free {
			if f == MilliPerCard && len(a.Cards) < d.Whole {
				a.Cards = append(a.Cards, i)
			}
		}
		return []Assignment{a}
	}
	var out []Assignment
	var seen []int64
	for i, f := range n.Free {
		if f >= d.Milli && !slices.Contains(seen, f) {
			seen = append(seen, f)
			out = append(out, Assignment{Cards: []int{i}, Milli: d.Milli})
		}
	}
	return out
}

// FirstFit is the deterministic placement used for pods whose cards are
// unknown: the first candidate, i.e. the lowest free cards.
func (n *NodeState) FirstFit(d Demand) (Assignment, bool) {
	c := n.Candidates(d)
	if len(c) == 0 {
		return Assignment{}, false
	}
	return c[0], true
}

// With returns the node after placing d with a; n is not modified.
func (n *NodeState) With(d Demand, a Assignment) NodeState {
	out := *n
	out.Free = slices.Clone(n.Free)
	for _, c := range a.Cards {
		out.Free[c] -= a.Milli
	}
	out.FreeMilliCPU -= d.MilliCPU
	out.FreeMemory -= d.Memory
	return out
}

// WithoutShortMemory returns the node as a shared pod sees it when the
// cards' free framebuffer is measured: a card whose known free fraction is
// below the pod's share of the card is shown full, since the pod would not
// fit in its memory. Unknown cards are not hidden. n is returned unchanged
// when nothing is hidden or the pod takes no share.
func (n *NodeState) WithoutShortMemory(d Demand, freeFraction func(card int) (float64, bool)) *NodeState {
	if !d.IsShared() {
		return n
	}
	need := float64(d.Milli) / float64(MilliPerCard)
	var out *NodeState
	for card := range n.Free {
		free, known := freeFraction(card)
		if !known || free >= need {
			continue
		}
		if out == nil {
			c := *n
			c.Free = slices.Clone(n.Free)
			out = &c
		}
		out.Free[card] = 0
	}
	if out == nil {
		return n
	}
	return out
}
