package gpu

import "testing"

// benchMix resembles the openb default trace: a few dozen GPU shapes, each
// with several CPU sizes.
func benchMix() *Distribution {
	counts := map[Class]int{}
	shares := []int64{1000, 810, 650, 590, 550, 470, 460, 370, 320, 230, 220, 160, 110, 50}
	for i, m := range shares {
		for c := int64(1); c <= 6; c++ {
			cl := Class{Whole: 0, Milli: m, MilliCPU: c * 2000}
			if m == 1000 {
				cl.Whole, cl.Milli = 1, 0
			}
			counts[cl] = 10 + i
		}
	}
	for _, k := range []int{2, 4, 8} {
		counts[Class{Whole: k, MilliCPU: int64(k) * 12000}] = 5
	}
	counts[Class{MilliCPU: 16000}] = 100
	return NewDistribution(counts)
}

func benchNode() *NodeState {
	return &NodeState{Name: "g2", Model: "G2", Free: []int64{1000, 1000, 540, 0, 190, 1000, 350, 1000},
		FreeMilliCPU: 50000, FreeMemory: 200 << 30, AllocMilliCPU: 96000, AllocMemory: 384 << 30}
}

// BenchmarkFragmentation is one node's expected fragmentation against a
// trace-like mix (about 90 classes).
func BenchmarkFragmentation(b *testing.B) {
	dist, n := benchMix(), benchNode()
	for b.Loop() {
		Fragmentation(n, dist)
	}
}

// BenchmarkBestFGD is one node's best FGD placement of a shared pod: the
// node's fragmentation before and after each distinct candidate card.
func BenchmarkBestFGD(b *testing.B) {
	dist, n := benchMix(), benchNode()
	fgd := Strategies()[FGD].Score
	d := Demand{Milli: 320, MilliCPU: 4000, Memory: 8 << 30}
	for b.Loop() {
		Best(fgd, &Input{Before: n, Demand: d, Dist: dist})
	}
}
