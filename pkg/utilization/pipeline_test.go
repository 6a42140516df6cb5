package utilization

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
	testingclock "k8s.io/utils/clock/testing"
)

// scriptedSource returns whatever the test sets next.
type scriptedSource struct {
	name    string
	mu      sync.Mutex
	batch   Batch
	err     error
	fetches atomic.Int64
}

func (s *scriptedSource) Name() string { return s.name }

func (s *scriptedSource) Fetch(context.Context) (Batch, error) {
	s.fetches.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.batch, s.err
}

func (s *scriptedSource) set(b Batch, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.batch, s.err = b, err
}

func testNodes(names ...string) func() ([]*corev1.Node, error) {
	return func() ([]*corev1.Node, error) {
		var out []*corev1.Node
		for _, n := range names {
			out = append(out, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n}})
		}
		return out, nil
	}
}

func TestPipelineRefreshRecordsMetrics(t *testing.T) {
	clk := testingclock.NewFakeClock(t0)
	reg := prometheus.NewPedanticRegistry()
	src := &scriptedSource{name: "fake"}
	spec := SourceSpec{Source: src, Interval: time.Second, Timeout: time.Second}
	p, err := NewPipeline(PipelineOptions{
		Window: time.Minute, Sources: []SourceSpec{spec}, Registerer: reg,
		Nodes: testNodes("n1", "n2", "n3"), Resources: []Resource{CPU}, Clock: clk,
	})
	require.NoError(t, err)

	src.set(Batch{Samples: []Sample{
		sample("n1", CPU, 0.5, t0.Add(-30*time.Second)),
		sample("n2", CPU, 2, t0),
	}, Dropped: map[DropReason]int{DropNoNode: 1}}, nil)
	require.NoError(t, p.Refresh(t.Context(), spec))

	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP harbormaster_utilization_dropped_samples_total Samples discarded instead of stored (NaN, negative, over 100%, not attributable to a node).
# TYPE harbormaster_utilization_dropped_samples_total counter
harbormaster_utilization_dropped_samples_total{reason="no_node",source="fake"} 1
harbormaster_utilization_dropped_samples_total{reason="over_100_percent",source="fake"} 1
# HELP harbormaster_utilization_fetch_errors_total Fetches of a utilisation source that failed, partially or fully.
# TYPE harbormaster_utilization_fetch_errors_total counter
harbormaster_utilization_fetch_errors_total{source="fake"} 0
# HELP harbormaster_utilization_nodes_without_data Nodes with no sample younger than the staleness window; the scheduler treats them as neutral.
# TYPE harbormaster_utilization_nodes_without_data gauge
harbormaster_utilization_nodes_without_data{resource="cpu"} 2
`), "harbormaster_utilization_dropped_samples_total", "harbormaster_utilization_fetch_errors_total", "harbormaster_utilization_nodes_without_data"))

	ages, err := reg.Gather()
	require.NoError(t, err)
	var found bool
	for _, mf := range ages {
		if mf.GetName() == "harbormaster_utilization_sample_age_seconds" {
			found = true
			h := mf.GetMetric()[0].GetHistogram()
			assert.Equal(t, uint64(1), h.GetSampleCount())
			assert.InDelta(t, 30, h.GetSampleSum(), 0.001)
		}
	}
	assert.True(t, found, "sample age histogram exported")

	// A failing fetch is counted, keeps the old samples until they go stale.
	src.set(Batch{}, errors.New("prometheus down"))
	require.Error(t, p.Refresh(t.Context(), spec))
	assert.Equal(t, 1.0, testutil.ToFloat64(p.metrics.fetchErrors.WithLabelValues("fake")))
	_, ok := p.Snapshot().Get("n1", CPU)
	assert.True(t, ok)
	clk.Step(31 * time.Second)
	_, ok = p.Snapshot().Get("n1", CPU)
	assert.False(t, ok)
	assert.Equal(t, 3.0, gaugeValue(t, reg, "harbormaster_utilization_nodes_without_data"))

	p.Stop()
	n, err := testutil.GatherAndCount(reg)
	require.NoError(t, err)
	assert.Zero(t, n, "Stop unregisters every collector")
}

func gaugeValue(t *testing.T, reg prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("metric %s not found", name)
	return 0
}

func TestPipelineRunsOneRefresherPerSourceAndStops(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	a := &scriptedSource{name: "a"}
	b := &scriptedSource{name: "b"}
	a.set(Batch{Samples: []Sample{sample("n1", CPU, 0.1, time.Now())}}, nil)
	b.set(Batch{}, errors.New("always failing"))
	p, err := NewPipeline(PipelineOptions{Window: time.Minute, Sources: []SourceSpec{
		{Source: a, Interval: 10 * time.Millisecond, Timeout: 10 * time.Millisecond},
		{Source: b, Interval: 10 * time.Millisecond, Timeout: 10 * time.Millisecond},
	}})
	require.NoError(t, err)

	ctx, cancel := context.WithCancel(t.Context())
	p.Start(ctx)
	require.Eventually(t, func() bool { return a.fetches.Load() >= 3 && b.fetches.Load() >= 3 }, 5*time.Second, 5*time.Millisecond)
	_, ok := p.Snapshot().Get("n1", CPU)
	assert.True(t, ok, "the healthy source's samples arrive despite the other failing")

	cancel() // the context alone stops the refreshers
	require.Eventually(t, func() bool {
		before := a.fetches.Load()
		time.Sleep(50 * time.Millisecond)
		return a.fetches.Load() == before
	}, 5*time.Second, time.Millisecond)
	p.Stop()
	p.Stop() // idempotent
}

func TestPipelineStopWithoutContextCancel(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	a := &scriptedSource{name: "a"}
	p, err := NewPipeline(PipelineOptions{Window: time.Minute, Sources: []SourceSpec{
		{Source: a, Interval: time.Hour, Timeout: time.Second},
	}})
	require.NoError(t, err)
	p.Start(t.Context())
	require.Eventually(t, func() bool { return a.fetches.Load() == 1 }, 5*time.Second, time.Millisecond)
	p.Stop() // returns only after the goroutine exited; goleak checks
}

func TestNewPipelineValidates(t *testing.T) {
	src := &scriptedSource{name: "a"}
	for name, opts := range map[string]PipelineOptions{
		"no window":     {Sources: []SourceSpec{{Source: src, Interval: time.Second, Timeout: time.Second}}},
		"no interval":   {Window: time.Minute, Sources: []SourceSpec{{Source: src, Timeout: time.Second}}},
		"no timeout":    {Window: time.Minute, Sources: []SourceSpec{{Source: src, Interval: time.Second}}},
		"same name x 2": {Window: time.Minute, Sources: []SourceSpec{{Source: src, Interval: time.Second, Timeout: time.Second}, {Source: src, Interval: time.Second, Timeout: time.Second}}},
	} {
		_, err := NewPipeline(opts)
		assert.Error(t, err, name)
	}
}

func TestPipelineDuplicateRegistrationFails(t *testing.T) {
	reg := prometheus.NewRegistry()
	opts := PipelineOptions{Window: time.Minute, Registerer: reg}
	p, err := NewPipeline(opts)
	require.NoError(t, err)
	_, err = NewPipeline(opts)
	var already prometheus.AlreadyRegisteredError
	require.ErrorAs(t, err, &already)
	p.Stop()
	p2, err := NewPipeline(opts)
	require.NoError(t, err, "after Stop the series can be registered again")
	p2.Stop()
}

// Each plugin's pipeline in a profile exports its own series; a second
// instance of the same plugin and profile runs without exporting.
func TestNewPluginPipeline(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	opts := func(source string) PipelineOptions {
		return PipelineOptions{Window: time.Minute, Sources: []SourceSpec{{Source: &scriptedSource{name: source}, Interval: time.Hour, Timeout: time.Second}}}
	}
	logger := klog.Background()
	a, err := NewPluginPipeline(logger, opts("prometheus"), reg, "p", "A")
	require.NoError(t, err)
	b, err := NewPluginPipeline(logger, opts("dcgm"), reg, "p", "B")
	require.NoError(t, err)
	again, err := NewPluginPipeline(logger, opts("other"), reg, "p", "A")
	require.NoError(t, err, "a duplicate runs without exporting")
	unexported, err := NewPluginPipeline(logger, opts("none"), nil, "p", "C")
	require.NoError(t, err)
	for _, p := range []*Pipeline{a, b, again, unexported} {
		t.Cleanup(p.Stop)
	}

	mfs, err := reg.Gather()
	require.NoError(t, err)
	var series []string
	for _, mf := range mfs {
		if mf.GetName() != metricsNamespace+"_fetch_errors_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			series = append(series, strings.Join(labels, ","))
		}
	}
	require.ElementsMatch(t, []string{"plugin=A,profile=p,source=prometheus", "plugin=B,profile=p,source=dcgm"}, series)
}

func TestPipelineContextEndUnregistersMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	a := &scriptedSource{name: "a"}
	p, err := NewPipeline(PipelineOptions{Window: time.Minute, Registerer: reg, Sources: []SourceSpec{
		{Source: a, Interval: time.Hour, Timeout: time.Second},
	}})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	p.Start(ctx)
	cancel()
	require.Eventually(t, func() bool {
		n, err := testutil.GatherAndCount(reg)
		return err == nil && n == 0
	}, 5*time.Second, 5*time.Millisecond)
}
