package framework

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Exporter stands in for node_exporter on simulated nodes: it serves one
// gauge per node on /metrics for a real Prometheus to scrape, and the test
// sets the values.
type Exporter struct {
	server *httptest.Server
	gauge  *prometheus.GaugeVec
}

// StartExporter serves metric{node="..."} gauges until the test ends.
func StartExporter(t testing.TB, metric string) *Exporter {
	t.Helper()
	reg := prometheus.NewRegistry()
	e := &Exporter{gauge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: metric, Help: "Simulated node utilisation for Harbormaster tests.",
	}, []string{"node"})}
	reg.MustRegister(e.gauge)
	e.server = httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(e.server.Close)
	return e
}

// Set reports value for node from the next scrape on.
func (e *Exporter) Set(node string, value float64) { e.gauge.WithLabelValues(node).Set(value) }

// Target is the host:port Prometheus scrapes.
func (e *Exporter) Target() string { return strings.TrimPrefix(e.server.URL, "http://") }
