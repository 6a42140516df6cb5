package utilization

import (
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/clock"
)

// retainWindows is how many windows a sample outlives its freshness before
// the store forgets it: long enough for the sample-age metric to show a
// source that went silent, short enough to forget deleted nodes.
const retainWindows = 10

// sampleSet maps node name to its latest sample per resource. A published
// sampleSet is never modified: writers copy it, readers share it.
type sampleSet map[string]map[Resource]Sample

// Store keeps the latest valid sample per node and resource. Writers are the
// source refreshers; readers take a Snapshot, which costs one atomic load, so
// scheduling never contends with fetching.
type Store struct {
	window time.Duration
	clock  clock.PassiveClock

	writeMu sync.Mutex // serialises Ingest; readers never take it
	current atomic.Pointer[sampleSet]
}

// NewStore returns an empty store whose samples count as known for window
// after their timestamp.
func NewStore(window time.Duration, clk clock.PassiveClock) *Store {
	if clk == nil {
		clk = clock.RealClock{}
	}
	s := &Store{window: window, clock: clk}
	empty := sampleSet{}
	s.current.Store(&empty)
	return s
}

// Window is how long a sample stays known after its timestamp.
func (s *Store) Window() time.Duration { return s.window }

// Ingest stores a source's batch. For each node and resource the sample with
// the latest timestamp wins, whichever source it came from, so a second
// source fills in when the first one stops. It returns every sample dropped,
// the batch's own and those failing Validate, by reason.
func (s *Store) Ingest(batch Batch) map[DropReason]int {
	dropped := map[DropReason]int{}
	for r, n := range batch.Dropped {
		dropped[r] += n
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()

	old := *s.current.Load()
	forgetBefore := s.clock.Now().Add(-retainWindows * s.window)
	next := make(sampleSet, len(old))
	for node, byResource := range old {
		kept := make(map[Resource]Sample, len(byResource))
		for r, sample := range byResource {
			if !sample.Time.Before(forgetBefore) {
				kept[r] = sample
			}
		}
		if len(kept) > 0 {
			next[node] = kept
		}
	}
	for _, sample := range batch.Samples {
		if reason := Validate(sample); reason != "" {
			dropped[reason]++
			continue
		}
		byResource := next[sample.Node]
		if byResource == nil {
			byResource = map[Resource]Sample{}
			next[sample.Node] = byResource
		}
		if prev, ok := byResource[sample.Resource]; ok && prev.Time.After(sample.Time) {
			continue
		}
		byResource[sample.Resource] = sample
	}
	s.current.Store(&next)
	return dropped
}

// Snapshot returns an immutable view of the store as of now.
func (s *Store) Snapshot() Snapshot {
	return Snapshot{At: s.clock.Now(), Window: s.window, samples: *s.current.Load()}
}

// Snapshot is the store as one scheduling cycle sees it. A sample is known
// if it is at most Window older than At.
type Snapshot struct {
	At      time.Time
	Window  time.Duration
	samples sampleSet
}

// NewSnapshot builds a snapshot from samples, for tests and for callers that
// assemble utilisation themselves. Later samples win as in Store.Ingest;
// invalid ones are skipped.
func NewSnapshot(at time.Time, window time.Duration, samples ...Sample) Snapshot {
	set := sampleSet{}
	for _, sample := range samples {
		if Validate(sample) != "" {
			continue
		}
		if set[sample.Node] == nil {
			set[sample.Node] = map[Resource]Sample{}
		}
		if prev, ok := set[sample.Node][sample.Resource]; ok && prev.Time.After(sample.Time) {
			continue
		}
		set[sample.Node][sample.Resource] = sample
	}
	return Snapshot{At: at, Window: window, samples: set}
}

// Latest returns the newest sample for a node and resource whatever its age.
func (s Snapshot) Latest(node string, r Resource) (Sample, bool) {
	sample, ok := s.samples[node][r]
	return sample, ok
}

// Get returns the sample for a node and resource if it is known, i.e. not
// older than the window. A sample stamped in the future (clock skew between
// the source and the scheduler) counts as fresh.
func (s Snapshot) Get(node string, r Resource) (Sample, bool) {
	sample, ok := s.Latest(node, r)
	if !ok || !s.Fresh(sample) {
		return Sample{}, false
	}
	return sample, true
}

// Fresh reports whether a sample is within the window.
func (s Snapshot) Fresh(sample Sample) bool {
	return s.At.Sub(sample.Time) <= s.Window
}

// ForNode is Get for a Node object: sources that identify nodes by address
// (node_exporter's instance label is host:port) are matched through the
// node's status addresses when its name has no sample.
func (s Snapshot) ForNode(node *corev1.Node, r Resource) (Sample, bool) {
	if sample, ok := s.Get(node.Name, r); ok {
		return sample, true
	}
	for _, addr := range node.Status.Addresses {
		if addr.Address == node.Name {
			continue
		}
		if sample, ok := s.Get(addr.Address, r); ok {
			return sample, true
		}
	}
	return Sample{}, false
}

// Each calls fn for the latest sample of every node and resource, fresh or
// not, in no particular order.
func (s Snapshot) Each(fn func(Sample)) {
	for _, byResource := range s.samples {
		for _, sample := range byResource {
			fn(sample)
		}
	}
}
