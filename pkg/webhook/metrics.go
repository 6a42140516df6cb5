package webhook

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are what operators watch about admission.
type Metrics struct {
	// Requests counts admission requests by webhook and result: patched,
	// unchanged, skipped (exempt) or error.
	Requests *prometheus.CounterVec
	// Rules counts rules that changed an object, by webhook and rule.
	Rules *prometheus.CounterVec
	// Duration is the handler's own latency, by webhook.
	Duration *prometheus.HistogramVec
}

// NewMetrics creates and registers the admission metrics.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "harbormaster_admission_requests_total",
			Help: "Admission requests handled, by webhook and result (patched, unchanged, skipped, denied, error).",
		}, []string{"webhook", "result"}),
		Rules: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "harbormaster_admission_rules_applied_total",
			Help: "Mutation rules that changed an object, by webhook and rule.",
		}, []string{"webhook", "rule"}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "harbormaster_admission_duration_seconds",
			Help:    "Time spent handling an admission request, by webhook.",
			Buckets: []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1},
		}, []string{"webhook"}),
	}
	if reg != nil {
		reg.MustRegister(m.Requests, m.Rules, m.Duration)
	}
	return m
}
