package gpu

import (
	"slices"
	"strings"
	"sync"
)

// Class is a kind of pod for the workload mix: its GPU shape, CPU and
// accepted models, as the paper's typical pods. Pods of one class are
// interchangeable for fragmentation, which does not consider memory.
type Class struct {
	Whole    int
	Milli    int64
	MilliCPU int64
	// Models is the sorted accepted models joined by "|"; "" accepts any.
	Models string
}

// ClassOf is the class of a demand.
func ClassOf(d Demand) Class {
	c := Class{Whole: d.Whole, Milli: d.Milli, MilliCPU: d.MilliCPU}
	if d.Models != nil {
		c.Models = "|" + strings.Join(d.Models, "|") // a leading bar tells "none accepted" from "any"
	}
	return c
}

// WorkloadMix learns the mix of demands the cluster receives: a frequency
// table of classes over the last Window observed pods. It is safe for
// concurrent use; Distribution is cheap when nothing was observed since the
// previous call.
type WorkloadMix struct {
	mu     sync.Mutex
	window int
	ring   []Class
	next   int
	counts map[Class]int
	dist   *Distribution // nil when stale
}

// NewWorkloadMix returns an empty mix remembering the last window pods.
func NewWorkloadMix(window int) *WorkloadMix {
	return &WorkloadMix{window: max(window, 1), counts: map[Class]int{}}
}

// Observe counts one pod's demand.
func (w *WorkloadMix) Observe(d Demand) {
	c := ClassOf(d)
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.ring) < w.window {
		w.ring = append(w.ring, c)
	} else {
		old := w.ring[w.next]
		if w.counts[old]--; w.counts[old] == 0 {
			delete(w.counts, old)
		}
		w.ring[w.next] = c
		w.next = (w.next + 1) % w.window
	}
	w.counts[c]++
	w.dist = nil
}

// Len is the number of pods the mix currently reflects.
func (w *WorkloadMix) Len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.ring)
}

// Distribution returns the current mix as probabilities. The result is
// immutable and shared.
func (w *WorkloadMix) Distribution() *Distribution {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.dist == nil {
		w.dist = NewDistribution(w.counts)
	}
	return w.dist
}

// Distribution is a workload mix as probabilities, grouped by GPU shape so
// that fragmentation does the per-card work once per shape.
type Distribution struct {
	shapes []shape
	// Pods is the number of observations behind the probabilities.
	Pods int
}

// shape is the classes sharing a GPU demand and model restriction.
type shape struct {
	whole  int
	milli  int64
	models []string // nil accepts any
	prob   float64  // sum over classes
	hosts  []hostNeed
}

// hostNeed is one class's CPU and its probability.
type hostNeed struct {
	milliCPU int64
	prob     float64
}

// NewDistribution builds a distribution from counts per class.
func NewDistribution(counts map[Class]int) *Distribution {
	total := 0
	for _, n := range counts {
		total += n
	}
	d := &Distribution{Pods: total}
	if total == 0 {
		return d
	}
	classes := make([]Class, 0, len(counts))
	for c := range counts {
		classes = append(classes, c)
	}
	// A stable order makes float sums, and so scores, reproducible.
	slices.SortFunc(classes, compareClass)
	for _, c := range classes {
		p := float64(counts[c]) / float64(total)
		i := slices.IndexFunc(d.shapes, func(s shape) bool {
			return s.whole == c.Whole && s.milli == c.Milli && modelsKey(s.models) == c.Models
		})
		if i < 0 {
			d.shapes = append(d.shapes, shape{whole: c.Whole, milli: c.Milli, models: parseModelsKey(c.Models)})
			i = len(d.shapes) - 1
		}
		s := &d.shapes[i]
		s.prob += p
		s.hosts = append(s.hosts, hostNeed{milliCPU: c.MilliCPU, prob: p})
	}
	return d
}

// Probability is the share of pods whose class is c.
func (d *Distribution) Probability(c Class) float64 {
	for _, s := range d.shapes {
		if s.whole != c.Whole || s.milli != c.Milli || modelsKey(s.models) != c.Models {
			continue
		}
		for _, h := range s.hosts {
			if h.milliCPU == c.MilliCPU {
				return h.prob
			}
		}
	}
	return 0
}

func modelsKey(models []string) string {
	if models == nil {
		return ""
	}
	return "|" + strings.Join(models, "|")
}

func parseModelsKey(k string) []string {
	if k == "" {
		return nil
	}
	if k == "|" {
		return []string{}
	}
	return strings.Split(k[1:], "|")
}

func compareClass(a, b Class) int {
	switch {
	case a.Whole != b.Whole:
		return a.Whole - b.Whole
	case a.Milli != b.Milli:
		return int(a.Milli - b.Milli)
	case a.Models != b.Models:
		return strings.Compare(a.Models, b.Models)
	}
	return cmpInt64(a.MilliCPU, b.MilliCPU)
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
