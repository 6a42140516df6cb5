package gpu

import (
	"hash/fnv"
	"math"
)

// StrategyName names a placement strategy.
type StrategyName string

// The strategies. FGD is the one to use; the others are the baselines it is
// measured against.
const (
	// FGD places a pod where the node's expected fragmentation grows least
	// (fragmentation gradient descent).
	FGD StrategyName = "FGD"
	// BestFit places a pod where the least resources remain, as a weighted
	// sum in cluster-normalised units.
	BestFit StrategyName = "BestFit"
	// Packing places a pod on the most allocated node (weighted fraction
	// of allocatable), and a shared pod on the fullest card that fits.
	Packing StrategyName = "Packing"
	// Spread places a pod on the least allocated node, and a shared pod on
	// the emptiest card.
	Spread StrategyName = "Spread"
	// DotProduct places a pod where the dot product of its demand and the
	// node's free resources (both as fractions of allocatable) is smallest.
	DotProduct StrategyName = "DotProduct"
	// Random scores every placement with a seeded hash.
	Random StrategyName = "Random"
)

// ScoreFunc rates placing Input.Demand on Input.Before with
// Input.Assignment; higher is better. Scores of different nodes compare,
// scores of different strategies do not.
type ScoreFunc func(in *Input) float64

// Strategy is a score function and the smallest difference of its scores
// that means something: differences below it are tie-breaks, which decide
// among otherwise equal placements but must not be stretched into a full
// preference when scores are blended with other criteria.
type Strategy struct {
	Score      ScoreFunc
	Resolution float64
}

// Strategies maps each strategy to its score function, as the in-tree
// NodeResourcesFit maps its scoring strategy types to scorers.
func Strategies() map[StrategyName]Strategy {
	const fraction = 1e-3 // of allocatable
	return map[StrategyName]Strategy{
		FGD:        {fgdScore, 1}, // thousandths of a card
		BestFit:    {bestFitScore, fraction},
		Packing:    {packingScore, fraction},
		Spread:     {spreadScore, fraction},
		DotProduct: {dotProductScore, fraction},
		Random:     {randomScore, fraction},
	}
}

// Scale01 maps raw scores of one strategy to [0, 1] by their range across
// candidates, a range below the strategy's resolution counting as the
// resolution: near-equal scores stay near-equal.
func (s Strategy) Scale01(raw []float64) []float64 {
	out := make([]float64, len(raw))
	if len(raw) == 0 {
		return out
	}
	lo, hi := raw[0], raw[0]
	for _, r := range raw {
		lo, hi = math.Min(lo, r), math.Max(hi, r)
	}
	span := math.Max(hi-lo, s.Resolution)
	for i, r := range raw {
		out[i] = (r - lo) / span
	}
	return out
}

// Weights weigh GPU, CPU and memory in the resource-based strategies.
type Weights struct {
	GPU, CPU, Memory float64
}

// Scale is the largest allocatable of each resource among the nodes being
// compared, so that BestFit's absolute remainders share one unit.
type Scale struct {
	MilliGPU, MilliCPU, Memory int64
}

// ScaleOf returns the largest allocatable of each resource of nodes.
func ScaleOf(nodes []*NodeState) Scale {
	var s Scale
	for _, n := range nodes {
		s.MilliGPU = max(s.MilliGPU, n.CapacityMilli())
		s.MilliCPU = max(s.MilliCPU, n.AllocMilliCPU)
		s.Memory = max(s.Memory, n.AllocMemory)
	}
	return s
}

// Input is one candidate placement. It is reused across a node's
// candidates so that the node's own fragmentation is computed once.
type Input struct {
	Before     *NodeState
	After      *NodeState
	Demand     Demand
	Assignment Assignment
	Dist       *Distribution
	Weights    Weights
	Scale      Scale
	// RandomKey seeds Random; the simulator derives it from its seed and
	// the pod, the plugin from the pod's UID.
	RandomKey uint64

	fragBefore *float64
}

func (in *Input) beforeFragmentation() float64 {
	if in.fragBefore == nil {
		f := Fragmentation(in.Before, in.Dist)
		in.fragBefore = &f
	}
	return *in.fragBefore
}

// Best returns the best candidate placement of in.Demand on in.Before by
// score, ties going to the lower card; ok is false if the demand does not
// fit the node's cards. in.Assignment and in.After are left set to the
// best candidate.
func Best(score ScoreFunc, in *Input) (best Assignment, bestScore float64, ok bool) {
	before := in.Before
	for _, a := range before.Candidates(in.Demand) {
		after := before.With(in.Demand, a)
		in.Assignment, in.After = a, &after
		s := score(in)
		if !ok || s > bestScore {
			best, bestScore, ok = a, s, true
		}
	}
	if ok {
		after := before.With(in.Demand, best)
		in.Assignment, in.After = best, &after
	}
	return best, bestScore, ok
}

// fgdScore is minus the growth of expected fragmentation, the
// fragmentation gradient of Weng et al.
func fgdScore(in *Input) float64 {
	return -(Fragmentation(in.After, in.Dist) - in.beforeFragmentation()) + fgdTieBreak*gpuAllocated(in.After)
}

// fgdTieBreak orders placements whose fragmentation growth is equal (a pod
// without GPUs on any node with CPU to spare, a share on any of several
// equal cards) by how full the node's GPUs are: packing them keeps other
// nodes free. It is far below any real difference in fragmentation, which
// is in thousandths of a card.
const fgdTieBreak = 1e-6

func gpuAllocated(n *NodeState) float64 {
	if !n.HasGPU() {
		return 0
	}
	return 1 - float64(n.FreeMilli())/float64(n.CapacityMilli())
}

// cardTightness is in [0, 1], larger when the share left on the chosen
// card is smaller; zero for pods without a share.
func cardTightness(in *Input) float64 {
	if !in.Demand.IsShared() || in.Assignment.IsZero() {
		return 0
	}
	return 1 - float64(in.After.Free[in.Assignment.Cards[0]])/float64(MilliPerCard)
}

// cardTieBreak orders placements on one node, whose node-level terms are
// equal, without ever outweighing a node-level difference that matters.
const cardTieBreak = 1e-6

func bestFitScore(in *Input) float64 {
	n, w, s := in.After, in.Weights, in.Scale
	remaining := weighted(w.GPU, n.FreeMilli(), s.MilliGPU) +
		weighted(w.CPU, n.FreeMilliCPU, s.MilliCPU) +
		weighted(w.Memory, n.FreeMemory, s.Memory)
	return -remaining/sumWeights(w) + cardTieBreak*cardTightness(in)
}

func packingScore(in *Input) float64 {
	return allocatedFraction(in.After, in.Weights) + cardTieBreak*cardTightness(in)
}

func spreadScore(in *Input) float64 {
	return -allocatedFraction(in.After, in.Weights) - cardTieBreak*cardTightness(in)
}

func dotProductScore(in *Input) float64 {
	n, d, w := in.Before, in.Demand, in.Weights
	dot := w.GPU*fraction(d.GPUMilli(), n.CapacityMilli())*fraction(n.FreeMilli(), n.CapacityMilli()) +
		w.CPU*fraction(d.MilliCPU, n.AllocMilliCPU)*fraction(n.FreeMilliCPU, n.AllocMilliCPU) +
		w.Memory*fraction(d.Memory, n.AllocMemory)*fraction(n.FreeMemory, n.AllocMemory)
	return -dot/sumWeights(in.Weights) + cardTieBreak*cardTightness(in)
}

func randomScore(in *Input) float64 {
	h := fnv.New64a()
	var b [8]byte
	for i := range b {
		b[i] = byte(in.RandomKey >> (8 * i))
	}
	_, _ = h.Write(b[:])
	_, _ = h.Write([]byte(in.Before.Name))
	_, _ = h.Write([]byte(in.Assignment.String()))
	return float64(h.Sum64()>>11) / (1 << 53)
}

// allocatedFraction is the weighted mean over resources the node has of
// the fraction of allocatable in use.
func allocatedFraction(n *NodeState, w Weights) float64 {
	var sum, weights float64
	add := func(weight float64, free, alloc int64) {
		if alloc > 0 && weight > 0 {
			sum += weight * (1 - float64(free)/float64(alloc))
			weights += weight
		}
	}
	add(w.GPU, n.FreeMilli(), n.CapacityMilli())
	add(w.CPU, n.FreeMilliCPU, n.AllocMilliCPU)
	add(w.Memory, n.FreeMemory, n.AllocMemory)
	if weights == 0 {
		return 0
	}
	return sum / weights
}

func weighted(weight float64, v, unit int64) float64 {
	if unit <= 0 {
		return 0
	}
	return weight * float64(v) / float64(unit)
}

func fraction(v, of int64) float64 {
	if of <= 0 {
		return 0
	}
	return float64(v) / float64(of)
}

func sumWeights(w Weights) float64 {
	if s := w.GPU + w.CPU + w.Memory; s > 0 {
		return s
	}
	return 1
}

// MaxScore and MinScore bound normalised scores, as the framework's.
const (
	MaxScore int64 = 100
	MinScore int64 = 0
)

// Normalize maps raw scores (higher is better) to [MinScore, MaxScore]:
// the best ones get MaxScore and the rest are spread linearly over
// [MinScore, MaxScore-1] between the worst and the best. Plain min-max
// scaling would round placements that are better by less than a
// hundredth of the range to the same score and leave the choice among
// them to chance; reserving the top score keeps the strategy's choice
// exact. NaN scores count as the worst.
func Normalize(raw []float64) []int64 {
	out := make([]int64, len(raw))
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, r := range raw {
		if math.IsNaN(r) {
			continue
		}
		lo, hi = math.Min(lo, r), math.Max(hi, r)
	}
	for i, r := range raw {
		switch {
		case math.IsNaN(r) || math.IsInf(lo, 1):
			out[i] = MinScore
		case r == hi:
			out[i] = MaxScore
		default:
			out[i] = MinScore + int64(math.Floor(float64(MaxScore-1-MinScore)*(r-lo)/(hi-lo)))
		}
	}
	return out
}
