package gpu

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func pod(gpus int64, annotations map[string]string, mutate ...func(*v1.Pod)) *v1.Pod {
	reqs := v1.ResourceList{v1.ResourceCPU: resource.MustParse("2"), v1.ResourceMemory: resource.MustParse("1Gi")}
	if gpus > 0 {
		reqs[ResourceName] = *resource.NewQuantity(gpus, resource.DecimalSI)
	}
	p := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", Annotations: annotations},
		Spec:       v1.PodSpec{Containers: []v1.Container{{Name: "c", Resources: v1.ResourceRequirements{Requests: reqs, Limits: limitsOf(reqs)}}}},
	}
	for _, m := range mutate {
		m(p)
	}
	return p
}

func limitsOf(reqs v1.ResourceList) v1.ResourceList {
	if q, ok := reqs[ResourceName]; ok {
		return v1.ResourceList{ResourceName: q}
	}
	return nil
}

func modelAffinity(terms ...[]string) func(*v1.Pod) {
	return func(p *v1.Pod) {
		var st []v1.NodeSelectorTerm
		for _, models := range terms {
			t := v1.NodeSelectorTerm{MatchExpressions: []v1.NodeSelectorRequirement{{Key: "zone", Operator: v1.NodeSelectorOpExists}}}
			if models != nil {
				t.MatchExpressions = append(t.MatchExpressions, v1.NodeSelectorRequirement{Key: ModelLabel, Operator: v1.NodeSelectorOpIn, Values: models})
			}
			st = append(st, t)
		}
		p.Spec.Affinity = &v1.Affinity{NodeAffinity: &v1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &v1.NodeSelector{NodeSelectorTerms: st}}}
	}
}

func TestDemandOf(t *testing.T) {
	for _, tc := range []struct {
		name    string
		pod     *v1.Pod
		want    Demand
		wantErr string
	}{
		{"cpu only", pod(0, nil), Demand{MilliCPU: 2000, Memory: 1 << 30}, ""},
		{"whole cards", pod(2, nil), Demand{Whole: 2, MilliCPU: 2000, Memory: 1 << 30}, ""},
		{"shared", pod(0, map[string]string{MilliAnnotation: "250"}), Demand{Milli: 250, MilliCPU: 2000, Memory: 1 << 30}, ""},
		{"share of a whole card is not a share", pod(0, map[string]string{MilliAnnotation: "1000"}), Demand{}, "[1, 999]"},
		{"zero share", pod(0, map[string]string{MilliAnnotation: "0"}), Demand{}, "[1, 999]"},
		{"not a number", pod(0, map[string]string{MilliAnnotation: "a quarter"}), Demand{}, "[1, 999]"},
		{"share and whole", pod(1, map[string]string{MilliAnnotation: "500"}), Demand{}, "exclusive"},
		{"models annotation", pod(1, map[string]string{ModelsAnnotation: " V100, a100 ,"}),
			Demand{Whole: 1, MilliCPU: 2000, Memory: 1 << 30, Models: []string{"V100", "a100"}}, ""},
		{"empty models annotation", pod(1, map[string]string{ModelsAnnotation: " , "}), Demand{}, "names no model"},
		{"node selector", pod(1, nil, func(p *v1.Pod) { p.Spec.NodeSelector = map[string]string{ModelLabel: "T4"} }),
			Demand{Whole: 1, MilliCPU: 2000, Memory: 1 << 30, Models: []string{"T4"}}, ""},
		{"annotation intersected with selector", pod(1, map[string]string{ModelsAnnotation: "T4,A100"}, func(p *v1.Pod) { p.Spec.NodeSelector = map[string]string{ModelLabel: "a100"} }),
			Demand{Whole: 1, MilliCPU: 2000, Memory: 1 << 30, Models: []string{"A100"}}, ""},
		{"contradiction accepts nothing", pod(1, map[string]string{ModelsAnnotation: "T4"}, func(p *v1.Pod) { p.Spec.NodeSelector = map[string]string{ModelLabel: "A100"} }),
			Demand{Whole: 1, MilliCPU: 2000, Memory: 1 << 30, Models: []string{}}, ""},
		{"affinity terms are united", pod(1, nil, modelAffinity([]string{"T4"}, []string{"P100", "T4"})),
			Demand{Whole: 1, MilliCPU: 2000, Memory: 1 << 30, Models: []string{"P100", "T4"}}, ""},
		{"an unrestricted term lifts the restriction", pod(1, nil, modelAffinity([]string{"T4"}, nil)),
			Demand{Whole: 1, MilliCPU: 2000, Memory: 1 << 30}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DemandOf(tc.pod)
			if tc.wantErr != "" {
				assert.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestAcceptsModel(t *testing.T) {
	assert.True(t, Demand{}.AcceptsModel(""))
	assert.True(t, Demand{Models: []string{"A100"}}.AcceptsModel("a100"), "case-insensitive")
	assert.False(t, Demand{Models: []string{"A100"}}.AcceptsModel("NVIDIA-A100-SXM4-40GB"), "exact label values, no substrings")
	assert.False(t, Demand{Models: []string{}}.AcceptsModel("A100"))
}

func TestAssignmentRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Assignment
		out     string
		wantErr bool
	}{
		{in: "0,1", want: Assignment{Cards: []int{0, 1}, Milli: 1000}, out: "0,1"},
		{in: "3, 1", want: Assignment{Cards: []int{1, 3}, Milli: 1000}, out: "1,3"},
		{in: "2:250", want: Assignment{Cards: []int{2}, Milli: 250}, out: "2:250"},
		{in: "5", want: Assignment{Cards: []int{5}, Milli: 1000}, out: "5"},
		{in: "", wantErr: true},
		{in: "1,1", wantErr: true},
		{in: "-1", wantErr: true},
		{in: "2:1000", wantErr: true},
		{in: "2:0", wantErr: true},
		{in: "a:5", wantErr: true},
	} {
		got, err := ParseAssignment(tc.in)
		if tc.wantErr {
			assert.Error(t, err, tc.in)
			continue
		}
		require.NoError(t, err, tc.in)
		assert.Equal(t, tc.want, got, tc.in)
		assert.Equal(t, tc.out, got.String())
	}
}

func assigned(s string) *Assignment {
	a, err := ParseAssignment(s)
	if err != nil {
		panic(err)
	}
	return &a
}

func TestCards(t *testing.T) {
	whole := func(k int) Demand { return Demand{Whole: k} }
	shared := func(m int64) Demand { return Demand{Milli: m} }
	for _, tc := range []struct {
		name     string
		cards    int
		pods     []PlacedPod
		want     []int64
		problems int
	}{
		{"empty node", 2, nil, []int64{1000, 1000}, 0},
		{"known whole and shares", 4, []PlacedPod{
			{Key: "a", Demand: whole(2), Assignment: assigned("0,3")},
			{Key: "b", Demand: shared(250), Assignment: assigned("1:250")},
			{Key: "c", Demand: shared(500), Assignment: assigned("1:500")},
			{Key: "cpu", Demand: Demand{MilliCPU: 100}},
		}, []int64{0, 250, 1000, 0}, 0},
		{"unknown pods placed after known ones, in key order", 3, []PlacedPod{
			{Key: "z", Demand: shared(600)},
			{Key: "a", Demand: whole(1)},
			{Key: "k", Demand: shared(300), Assignment: assigned("0:300")},
		}, []int64{100, 0, 1000}, 0},
		{"assignment not matching the demand is re-placed", 2, []PlacedPod{
			{Key: "a", Demand: shared(300), Assignment: assigned("1:200")},
		}, []int64{700, 1000}, 1},
		{"card out of range", 1, []PlacedPod{
			{Key: "a", Demand: whole(1), Assignment: assigned("4")},
		}, []int64{0}, 1},
		{"double-booked card: the second holder is re-placed", 2, []PlacedPod{
			{Key: "a", Demand: whole(1), Assignment: assigned("0")},
			{Key: "b", Demand: shared(500), Assignment: assigned("0:500")},
		}, []int64{0, 500}, 1},
		{"over-committed node reads full", 1, []PlacedPod{
			{Key: "a", Demand: whole(1), Assignment: assigned("0")},
			{Key: "b", Demand: whole(1)},
		}, []int64{0}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			free, problems := Cards(tc.cards, tc.pods)
			assert.Equal(t, tc.want, free)
			assert.Len(t, problems, tc.problems, "%v", problems)
		})
	}
}

func node(free ...int64) *NodeState {
	return &NodeState{Name: "n", Model: "A", Free: free,
		FreeMilliCPU: 64000, FreeMemory: 256 << 30, AllocMilliCPU: 64000, AllocMemory: 256 << 30}
}

func TestFitAndCandidates(t *testing.T) {
	n := node(1000, 300, 1000, 300, 600)
	for _, tc := range []struct {
		name   string
		node   *NodeState
		demand Demand
		reason Reason
		cands  []string
	}{
		{"cpu only fits anywhere", n, Demand{MilliCPU: 1}, Fits, []string{""}},
		{"whole takes lowest free cards", n, Demand{Whole: 2}, Fits, []string{"0,2"}},
		{"too many whole", n, Demand{Whole: 3}, ReasonWholeCards, nil},
		{"share: one candidate per distinct free share", n, Demand{Milli: 300}, Fits, []string{"0:300", "1:300", "4:300"}},
		{"share too large for partial cards", n, Demand{Milli: 700}, Fits, []string{"0:700"}},
		{"share fits no card", node(200, 0), Demand{Milli: 300}, ReasonSharedCard, nil},
		{"model", n, Demand{Whole: 1, Models: []string{"B"}}, ReasonModel, nil},
		{"no gpus", node(), Demand{Milli: 1}, ReasonNoGPU, nil},
		{"cpu", n, Demand{Whole: 1, MilliCPU: 65000}, ReasonCPU, []string{"0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.reason, tc.node.Fit(tc.demand))
			var got []string
			for _, a := range tc.node.Candidates(tc.demand) {
				got = append(got, a.String())
			}
			assert.Equal(t, tc.cands, got)
		})
	}
	after := n.With(Demand{Milli: 300, MilliCPU: 1000, Memory: 1 << 30}, Assignment{Cards: []int{1}, Milli: 300})
	assert.Equal(t, []int64{1000, 0, 1000, 300, 600}, after.Free)
	assert.Equal(t, int64(63000), after.FreeMilliCPU)
	assert.Equal(t, []int64{1000, 300, 1000, 300, 600}, n.Free, "With does not modify the node")
}

func TestWithoutShortMemory(t *testing.T) {
	n := node(1000, 1000, 600)
	measured := map[int]float64{0: 0.2, 1: 0.6} // free fractions; card 2 unknown
	free := func(card int) (float64, bool) { f, ok := measured[card]; return f, ok }
	got := n.WithoutShortMemory(Demand{Milli: 500}, free)
	assert.Equal(t, []int64{0, 1000, 600}, got.Free, "card 0 has 20% free memory, the pod needs 50%")
	assert.Equal(t, []int64{1000, 1000, 600}, n.Free, "the node is not modified")
	assert.Same(t, n, n.WithoutShortMemory(Demand{Milli: 100}, free), "nothing hidden")
	assert.Same(t, n, n.WithoutShortMemory(Demand{Whole: 1}, free), "whole cards are not judged by memory")
	assert.Equal(t, ReasonSharedCard, n.WithoutShortMemory(Demand{Milli: 700}, free).FitGPU(Demand{Milli: 700}))
}

func dist(weights map[Class]int) *Distribution { return NewDistribution(weights) }

func TestFragmentation(t *testing.T) {
	shared300 := Class{Milli: 300}
	whole1 := Class{Whole: 1}
	whole2 := Class{Whole: 2}
	cpuOnly := Class{MilliCPU: 1000}
	mix := dist(map[Class]int{shared300: 2, whole2: 1, cpuOnly: 1})
	withCPU := func(n *NodeState, milliCPU int64) *NodeState { n.FreeMilliCPU = milliCPU; return n }
	for _, tc := range []struct {
		name string
		node *NodeState
		dist *Distribution
		want float64
	}{
		// As in the paper: one-card pods with CPU to spare cannot use the
		// partial card.
		{"one card per pod: the cards too small", node(1000, 1000, 400), dist(map[Class]int{whole1: 1}), 400},
		{"pod that cannot run strands everything", node(1000, 300), dist(map[Class]int{whole2: 1}), 1300},
		{"model not accepted strands everything", node(1000, 200), dist(map[Class]int{{Milli: 300, Models: "|B"}: 1}), 1200},
		{"cpu below one pod strands everything", withCPU(node(1000, 200), 500), dist(map[Class]int{{Milli: 300, MilliCPU: 1000}: 1}), 1200},
		{"pod without GPUs strands everything", node(1000, 200), dist(map[Class]int{cpuOnly: 1}), 1200},
		// Beyond the paper's one-pod test: what filling the node with the
		// kind leaves. CPU for two 10-core pods: two of four cards unused
		// (the paper: none, one pod fits).
		{"cpu for some of the free cards", withCPU(node(1000, 1000, 1000, 1000), 25000), dist(map[Class]int{{Whole: 1, MilliCPU: 10000}: 1}), 2000},
		{"cpu per class of a shape", withCPU(node(1000, 1000), 15000),
			dist(map[Class]int{{Whole: 1, MilliCPU: 10000}: 1, {Whole: 1, MilliCPU: 5000}: 1}), 0.5 * 1000},
		{"over-committed cpu reads as none", withCPU(node(1000), -1000), dist(map[Class]int{{Whole: 1, MilliCPU: 1000}: 1}), 1000},
		{"pod without cpu request on over-committed cpu", withCPU(node(1000), -1000), dist(map[Class]int{whole1: 1}), 0},
		// Three 300 shares on the full card leave 100, one on the 500
		// leaves 200, the 200 card takes none.
		{"share: the rest of each card", node(1000, 500, 200), dist(map[Class]int{shared300: 1}), 100 + 200 + 200},
		{"accepted model", node(1000, 200), dist(map[Class]int{{Milli: 300, Models: "|A|B"}: 1}), 300},
		{"k cards: full cards beyond a multiple of k", node(1000, 1000, 1000, 300), dist(map[Class]int{whole2: 1}), 1000 + 300},
		{"memory is not considered", func() *NodeState { n := node(1000); n.FreeMemory = 0; return n }(), dist(map[Class]int{whole1: 1}), 0},
		// shared 300 (p 0.5) leaves 100+100+200+200, whole-2 (0.25) the
		// 500 and 200 cards, the CPU-only pod (0.25) all 2700.
		{"mixed", node(1000, 1000, 500, 200), mix, 0.5*600 + 0.25*700 + 0.25*2700},
		{"full node has no fragments", node(0, 0), mix, 0},
		{"no gpus", node(), mix, 0},
		{"empty mix", node(1000, 200), dist(nil), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.InDelta(t, tc.want, Fragmentation(tc.node, tc.dist), 1e-9)
		})
	}
	assert.Equal(t, int64(300), FragmentationOf(node(1000, 200), Demand{Milli: 300}))
}

// FGD keeps big free blocks for the shapes the mix still needs, where
// packing only looks at the card it fills.
func TestStrategiesChooseCards(t *testing.T) {
	mix := dist(map[Class]int{{Milli: 700}: 1})
	n := node(1000, 900)
	pick := func(s StrategyName) string {
		a, _, ok := Best(Strategies()[s].Score, &Input{Before: n, Demand: Demand{Milli: 300}, Dist: mix, Weights: Weights{1, 1, 1}, Scale: ScaleOf([]*NodeState{n})})
		require.True(t, ok)
		return a.String()
	}
	// On card 1 the 300 pod leaves 600, too little for the 700 shape; on
	// card 0 it leaves 700, which the shape can still take.
	assert.Equal(t, "0:300", pick(FGD))
	assert.Equal(t, "1:300", pick(Packing), "fullest card")
	assert.Equal(t, "1:300", pick(BestFit), "tightest card")
	assert.Equal(t, "0:300", pick(Spread), "emptiest card")
}

func TestStrategiesChooseNodes(t *testing.T) {
	// Half the mix needs 8 cards: FGD keeps the empty 8-card node whole.
	mix := dist(map[Class]int{{Whole: 8}: 1, {Whole: 1}: 1})
	empty := node(1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000)
	empty.Name = "empty"
	half := node(0, 0, 0, 0, 1000, 1000, 1000, 1000)
	half.Name = "half"
	nodes := []*NodeState{empty, half}
	best := func(s StrategyName) string {
		var raw []float64
		for _, n := range nodes {
			_, score, ok := Best(Strategies()[s].Score, &Input{Before: n, Demand: Demand{Whole: 1}, Dist: mix, Weights: Weights{1, 1, 1}, Scale: ScaleOf(nodes)})
			require.True(t, ok)
			raw = append(raw, score)
		}
		scores := Normalize(raw)
		if scores[0] == MaxScore && scores[1] == MaxScore {
			return "tie"
		}
		if scores[0] == MaxScore {
			return nodes[0].Name
		}
		return nodes[1].Name
	}
	assert.Equal(t, "half", best(FGD))
	assert.Equal(t, "half", best(Packing))
	assert.Equal(t, "half", best(BestFit))
	assert.Equal(t, "half", best(DotProduct))
	assert.Equal(t, "empty", best(Spread))
	assert.Contains(t, []string{"empty", "half"}, best(Random))

	in := &Input{Before: half, Demand: Demand{Whole: 1}, Dist: mix}
	_, _, _ = Best(Strategies()[FGD].Score, in)
	// The half node has 4 free cards, too few for the 8-card shape: all
	// 4000 are fragments for it before, 3000 after.
	assert.InDelta(t, -(0.5*3000 - 0.5*4000), fgdScore(in), 1e-3)
}

// The CPU a node's free cards need is kept for them: a pod without GPUs
// goes where the CPU is spare, a pod with many cores per card where its
// cores strand the fewest cards.
func TestFGDKeepsCPUForFreeCards(t *testing.T) {
	mix := dist(map[Class]int{{Whole: 1, MilliCPU: 12000}: 1})
	tight := node(1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000) // 12 cores a card
	tight.Name, tight.FreeMilliCPU = "tight", 96000
	roomy := node(1000, 1000) // 52 cores a card
	roomy.Name, roomy.FreeMilliCPU = "roomy", 104000
	best := func(d Demand) (string, float64) {
		var name string
		bestScore := math.Inf(-1)
		for _, n := range []*NodeState{tight, roomy} {
			_, score, ok := Best(Strategies()[FGD].Score, &Input{Before: n, Demand: d, Dist: mix})
			require.True(t, ok)
			if score > bestScore {
				name, bestScore = n.Name, score
			}
		}
		return name, bestScore
	}
	// On tight, 12.5 cores leave CPU for 6 of its 8 cards: 2000 more
	// fragments; on roomy, CPU for both cards stays.
	name, score := best(Demand{MilliCPU: 12500})
	assert.Equal(t, "roomy", name)
	assert.InDelta(t, 0, score, 1e-3)
	// 30 cores on one card: on tight, the 66 cores left feed 5 of its 7
	// free cards (2000 more fragments); on roomy the last card keeps its
	// CPU.
	name, _ = best(Demand{Whole: 1, MilliCPU: 30000})
	assert.Equal(t, "roomy", name)
	in := &Input{Before: tight, Demand: Demand{Whole: 1, MilliCPU: 30000}, Dist: mix}
	_, _, _ = Best(Strategies()[FGD].Score, in)
	assert.InDelta(t, -2000, fgdScore(in), 1e-3)
}

func TestScale01(t *testing.T) {
	s := Strategy{Resolution: 1}
	assert.Equal(t, []float64{0, 1, 0.5}, s.Scale01([]float64{-10, 10, 0}))
	got := s.Scale01([]float64{0, 1e-6})
	assert.InDelta(t, 0, got[0], 1e-12)
	assert.InDelta(t, 1e-6, got[1], 1e-12, "a tie-break stays a tie-break")
	assert.Empty(t, s.Scale01(nil))
}

func TestRandomIsSeeded(t *testing.T) {
	n := node(1000)
	a := randomScore(&Input{Before: n, RandomKey: 1})
	assert.Equal(t, a, randomScore(&Input{Before: n, RandomKey: 1}))
	assert.NotEqual(t, a, randomScore(&Input{Before: n, RandomKey: 2}))
	assert.GreaterOrEqual(t, a, 0.0)
	assert.Less(t, a, 1.0)
}

func TestNormalize(t *testing.T) {
	for _, tc := range []struct {
		raw  []float64
		want []int64
	}{
		{nil, []int64{}},
		{[]float64{5}, []int64{100}},
		{[]float64{1, 1}, []int64{100, 100}},
		{[]float64{0, 10, 5}, []int64{0, 100, 49}},
		// A difference far below 1% of the range still decides.
		{[]float64{-1000, 0, -0.001}, []int64{0, 100, 98}},
		{[]float64{-2, -1, nan()}, []int64{0, 100, 0}},
	} {
		assert.Equal(t, tc.want, Normalize(tc.raw), "%v", tc.raw)
	}
}

func nan() float64 { var z float64; return z / z }

func TestWorkloadMixWindow(t *testing.T) {
	w := NewWorkloadMix(3)
	assert.Equal(t, 0, w.Distribution().Pods)
	w.Observe(Demand{Whole: 1})
	w.Observe(Demand{Milli: 500})
	d1 := w.Distribution()
	assert.Same(t, d1, w.Distribution(), "cached until the next observation")
	assert.InDelta(t, 0.5, d1.Probability(Class{Whole: 1}), 1e-9)
	w.Observe(Demand{Milli: 500})
	w.Observe(Demand{Milli: 500}) // evicts the whole-GPU pod
	d2 := w.Distribution()
	assert.Equal(t, 3, d2.Pods)
	assert.Equal(t, 0.0, d2.Probability(Class{Whole: 1}))
	assert.InDelta(t, 1, d2.Probability(Class{Milli: 500}), 1e-9)
	assert.InDelta(t, 0.5, d1.Probability(Class{Whole: 1}), 1e-9, "a published distribution never changes")
	assert.Equal(t, Class{Whole: 1, Models: "|A|B"}, ClassOf(Demand{Whole: 1, Models: []string{"A", "B"}}))
	assert.Equal(t, Class{Whole: 1, MilliCPU: 2000}, ClassOf(Demand{Whole: 1, MilliCPU: 2000, Memory: 1 << 30}), "memory is not part of a class")
}
