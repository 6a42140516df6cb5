package utilization

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	testingclock "k8s.io/utils/clock/testing"
)

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func sample(node string, r Resource, v float64, at time.Time) Sample {
	return Sample{Node: node, Resource: r, Value: v, Time: at, Source: "test"}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    Sample
		want DropReason
	}{
		{"valid", sample("n1", CPU, 0.5, t0), ""},
		{"zero is valid", sample("n1", CPU, 0, t0), ""},
		{"one is valid", sample("n1", CPU, 1, t0), ""},
		{"NaN", sample("n1", CPU, math.NaN(), t0), DropNotANumber},
		{"+Inf", sample("n1", CPU, math.Inf(1), t0), DropNotANumber},
		{"-Inf", sample("n1", CPU, math.Inf(-1), t0), DropNotANumber},
		{"negative", sample("n1", CPU, -0.01, t0), DropNegative},
		{"over 100%", sample("n1", CPU, 1.01, t0), DropOver100Percent},
		{"no node", sample("", CPU, 0.5, t0), DropNoNode},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, Validate(tc.s))
		})
	}
}

func TestStoreIngestDropsAndCounts(t *testing.T) {
	clk := testingclock.NewFakeClock(t0)
	s := NewStore(time.Minute, clk)
	batch := Batch{Samples: []Sample{
		sample("n1", CPU, 0.4, t0),
		sample("n2", CPU, math.NaN(), t0),
		sample("n3", CPU, -1, t0),
		sample("n4", CPU, 2, t0),
		sample("n5", Memory, 0.7, t0),
	}}
	batch.Drop(DropNoNode)
	dropped := s.Ingest(batch)
	assert.Equal(t, map[DropReason]int{DropNotANumber: 1, DropNegative: 1, DropOver100Percent: 1, DropNoNode: 1}, dropped)

	snap := s.Snapshot()
	got, ok := snap.Get("n1", CPU)
	require.True(t, ok)
	assert.Equal(t, 0.4, got.Value)
	assert.Equal(t, "test", got.Source)
	assert.Equal(t, t0, got.Time)
	for _, n := range []string{"n2", "n3", "n4"} {
		_, ok := snap.Get(n, CPU)
		assert.False(t, ok, "dropped sample for %s must leave the node unknown, not zero", n)
	}
	_, ok = snap.Get("n5", CPU)
	assert.False(t, ok, "memory sample must not answer for CPU")
}

func TestStoreStaleness(t *testing.T) {
	clk := testingclock.NewFakeClock(t0)
	s := NewStore(time.Minute, clk)
	s.Ingest(Batch{Samples: []Sample{sample("n1", CPU, 0.4, t0)}})

	_, ok := s.Snapshot().Get("n1", CPU)
	assert.True(t, ok, "fresh")
	clk.SetTime(t0.Add(time.Minute))
	_, ok = s.Snapshot().Get("n1", CPU)
	assert.True(t, ok, "exactly the window old is still known")
	clk.SetTime(t0.Add(time.Minute + time.Millisecond))
	snap := s.Snapshot()
	_, ok = snap.Get("n1", CPU)
	assert.False(t, ok, "older than the window is unknown")
	latest, ok := snap.Latest("n1", CPU)
	assert.True(t, ok, "Latest still sees it for metrics")
	assert.Equal(t, 0.4, latest.Value)

	// A sample from the future (source clock ahead) is fresh, not an error.
	s.Ingest(Batch{Samples: []Sample{sample("n2", CPU, 0.1, clk.Now().Add(time.Hour))}})
	_, ok = s.Snapshot().Get("n2", CPU)
	assert.True(t, ok)
}

func TestStoreLatestTimestampWinsAcrossSources(t *testing.T) {
	clk := testingclock.NewFakeClock(t0)
	s := NewStore(time.Minute, clk)
	newer := Sample{Node: "n1", Resource: CPU, Value: 0.8, Time: t0, Source: "a"}
	older := Sample{Node: "n1", Resource: CPU, Value: 0.2, Time: t0.Add(-10 * time.Second), Source: "b"}
	s.Ingest(Batch{Samples: []Sample{newer}})
	s.Ingest(Batch{Samples: []Sample{older}})
	got, _ := s.Snapshot().Get("n1", CPU)
	assert.Equal(t, "a", got.Source, "an older sample from another source must not replace a newer one")

	later := Sample{Node: "n1", Resource: CPU, Value: 0.3, Time: t0.Add(time.Second), Source: "b"}
	s.Ingest(Batch{Samples: []Sample{later}})
	got, _ = s.Snapshot().Get("n1", CPU)
	assert.Equal(t, "b", got.Source)
}

func TestStoreForgetsLongDeadSamples(t *testing.T) {
	clk := testingclock.NewFakeClock(t0)
	s := NewStore(time.Minute, clk)
	s.Ingest(Batch{Samples: []Sample{sample("gone", CPU, 0.4, t0)}})
	clk.SetTime(t0.Add(retainWindows*time.Minute + time.Second))
	s.Ingest(Batch{Samples: []Sample{sample("n1", CPU, 0.4, clk.Now())}})
	_, ok := s.Snapshot().Latest("gone", CPU)
	assert.False(t, ok)
}

func TestSnapshotIsImmutable(t *testing.T) {
	s := NewStore(time.Minute, testingclock.NewFakeClock(t0))
	s.Ingest(Batch{Samples: []Sample{sample("n1", CPU, 0.4, t0)}})
	before := s.Snapshot()
	s.Ingest(Batch{Samples: []Sample{sample("n1", CPU, 0.9, t0.Add(time.Second))}})
	got, _ := before.Get("n1", CPU)
	assert.Equal(t, 0.4, got.Value, "a snapshot taken earlier must not see later writes")
}

func TestSnapshotForNodeMatchesAddresses(t *testing.T) {
	snap := NewSnapshot(t0, time.Minute,
		sample("10.0.0.7", CPU, 0.3, t0),
		sample("n2", CPU, 0.6, t0),
		sample("10.0.0.8", CPU, 0.9, t0))
	byIP := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "n1"},
		Status:     corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "10.0.0.7"}}},
	}
	got, ok := snap.ForNode(byIP, CPU)
	require.True(t, ok)
	assert.Equal(t, 0.3, got.Value)

	byName := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "n2"},
		Status:     corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "10.0.0.8"}}},
	}
	got, _ = snap.ForNode(byName, CPU)
	assert.Equal(t, 0.6, got.Value, "the node name wins over an address")

	_, ok = snap.ForNode(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n3"}}, CPU)
	assert.False(t, ok)
}
