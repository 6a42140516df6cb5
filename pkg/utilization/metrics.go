package utilization

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
)

const metricsNamespace = "harbormaster_utilization"

// sampleAgeBuckets spans a healthy scrape lag (seconds) up to a source that
// has been silent for half an hour.
func sampleAgeBuckets() []float64 { return []float64{1, 5, 15, 30, 60, 120, 300, 600, 1800} }

// pipelineMetrics is what the pipeline exports about itself. Counters are
// updated by the refreshers; sample age and nodes without data are computed
// from the current snapshot at scrape time, so they are never stale.
type pipelineMetrics struct {
	fetchErrors    *prometheus.CounterVec
	lastSuccess    *prometheus.GaugeVec
	droppedSamples *prometheus.CounterVec
	snapshot       *snapshotCollector

	registerer prometheus.Registerer
	registered []prometheus.Collector
}

func newPipelineMetrics(snapshot func() Snapshot, nodes func() ([]*corev1.Node, error), resources []Resource) *pipelineMetrics {
	return &pipelineMetrics{
		fetchErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "fetch_errors_total",
			Help: "Fetches of a utilisation source that failed, partially or fully.",
		}, []string{"source"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: metricsNamespace, Name: "last_successful_fetch_timestamp_seconds",
			Help: "Unix time of the last fetch of a utilisation source that returned without error.",
		}, []string{"source"}),
		droppedSamples: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "dropped_samples_total",
			Help: "Samples discarded instead of stored (NaN, negative, over 100%, not attributable to a node).",
		}, []string{"source", "reason"}),
		snapshot: &snapshotCollector{
			snapshot:  snapshot,
			nodes:     nodes,
			resources: resources,
			sampleAge: prometheus.NewDesc(metricsNamespace+"_sample_age_seconds",
				"Age of the latest sample per node, by source and resource, at scrape time.",
				[]string{"source", "resource"}, nil),
			nodesWithoutData: prometheus.NewDesc(metricsNamespace+"_nodes_without_data",
				"Nodes with no sample younger than the staleness window; the scheduler treats them as neutral.",
				[]string{"resource"}, nil),
		},
	}
}

// register adds every collector to reg. On failure nothing stays registered.
func (m *pipelineMetrics) register(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{m.fetchErrors, m.lastSuccess, m.droppedSamples, m.snapshot} {
		if err := reg.Register(c); err != nil {
			for _, done := range m.registered {
				reg.Unregister(done)
			}
			m.registered = nil
			return err
		}
		m.registered = append(m.registered, c)
	}
	m.registerer = reg
	return nil
}

func (m *pipelineMetrics) unregister() {
	for _, c := range m.registered {
		m.registerer.Unregister(c)
	}
	m.registered = nil
}

func (m *pipelineMetrics) countDropped(source string, dropped map[DropReason]int) {
	for reason, n := range dropped {
		if n > 0 {
			m.droppedSamples.WithLabelValues(source, string(reason)).Add(float64(n))
		}
	}
}

// snapshotCollector derives gauges from the store when scraped.
type snapshotCollector struct {
	snapshot         func() Snapshot
	nodes            func() ([]*corev1.Node, error)
	resources        []Resource
	sampleAge        *prometheus.Desc
	nodesWithoutData *prometheus.Desc
}

func (c *snapshotCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.sampleAge
	ch <- c.nodesWithoutData
}

func (c *snapshotCollector) Collect(ch chan<- prometheus.Metric) {
	snap := c.snapshot()
	type key struct {
		source   string
		resource Resource
	}
	type histogram struct {
		count   uint64
		sum     float64
		buckets map[float64]uint64
	}
	bounds := sampleAgeBuckets()
	ages := map[key]*histogram{}
	snap.Each(func(s Sample) {
		age := max(snap.At.Sub(s.Time).Seconds(), 0)
		k := key{s.Source, s.Resource}
		h := ages[k]
		if h == nil {
			h = &histogram{buckets: make(map[float64]uint64, len(bounds))}
			ages[k] = h
		}
		h.count++
		h.sum += age
		for _, b := range bounds {
			if age <= b {
				h.buckets[b]++
			}
		}
	})
	for k, h := range ages {
		ch <- prometheus.MustNewConstHistogram(c.sampleAge, h.count, h.sum, h.buckets, k.source, string(k.resource))
	}

	if c.nodes == nil {
		return
	}
	nodes, err := c.nodes()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.nodesWithoutData, errors.Join(errors.New("listing nodes"), err))
		return
	}
	for _, r := range c.resources {
		missing := 0
		for _, n := range nodes {
			if _, ok := snap.ForNode(n, r); !ok {
				missing++
			}
		}
		ch <- prometheus.MustNewConstMetric(c.nodesWithoutData, prometheus.GaugeValue, float64(missing), string(r))
	}
}
