package utilization

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"time"

	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"k8s.io/utils/clock"
)

// PrometheusSourceName labels samples and metrics of the Prometheus source.
const PrometheusSourceName = "prometheus"

// Default PromQL expressions over node_exporter metrics. Both yield a
// fraction in [0, 1] per scrape target.
const (
	DefaultPrometheusCPUQuery    = `1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[1m]))`
	DefaultPrometheusMemoryQuery = `1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes`
)

// DefaultPrometheusNodeLabels are tried in order to find a series' node:
// `node` when relabelling attached the node name, else node_exporter's
// `instance` (host:port; the port is dropped and the host matched against
// node names and addresses).
func DefaultPrometheusNodeLabels() []string { return []string{"node", "instance"} }

// DropDuplicateNode is a second series for the same node and resource in
// one result: the query does not aggregate per node, so neither value is
// more trustworthy than the other; the first is kept.
const DropDuplicateNode DropReason = "duplicate_node"

// PrometheusConfig configures NewPrometheusSource.
type PrometheusConfig struct {
	// Address is the base URL of the Prometheus HTTP API, e.g.
	// http://prometheus.monitoring:9090.
	Address string
	// Queries holds one instant-vector PromQL expression per resource,
	// evaluating to a utilisation fraction per node.
	Queries map[Resource]string
	// NodeLabels are the label names that carry the node, first match wins.
	NodeLabels []string
	// RoundTripper is optional (authentication, TLS).
	RoundTripper http.RoundTripper
	Clock        clock.PassiveClock
}

// PrometheusSource reads utilisation with instant queries against
// /api/v1/query.
type PrometheusSource struct {
	api        promv1.API
	queries    map[Resource]string
	resources  []Resource
	nodeLabels []model.LabelName
	clock      clock.PassiveClock
}

var _ Source = &PrometheusSource{}

// NewPrometheusSource builds the source; it does not contact Prometheus.
func NewPrometheusSource(cfg PrometheusConfig) (*PrometheusSource, error) {
	if len(cfg.Queries) == 0 {
		return nil, errors.New("prometheus source needs at least one query")
	}
	if len(cfg.NodeLabels) == 0 {
		return nil, errors.New("prometheus source needs at least one node label")
	}
	client, err := promapi.NewClient(promapi.Config{Address: cfg.Address, RoundTripper: cfg.RoundTripper})
	if err != nil {
		return nil, fmt.Errorf("prometheus client for %q: %w", cfg.Address, err)
	}
	s := &PrometheusSource{api: promv1.NewAPI(client), queries: cfg.Queries, clock: cfg.Clock}
	if s.clock == nil {
		s.clock = clock.RealClock{}
	}
	for r := range cfg.Queries {
		s.resources = append(s.resources, r)
	}
	slices.Sort(s.resources)
	for _, l := range cfg.NodeLabels {
		s.nodeLabels = append(s.nodeLabels, model.LabelName(l))
	}
	return s, nil
}

// Name implements Source.
func (s *PrometheusSource) Name() string { return PrometheusSourceName }

// Fetch runs every query at the same evaluation time. A failing query does
// not discard the others' samples. Prometheus stamps instant-query results
// with the evaluation time and omits series whose last scrape is older than
// its lookback delta (5m by default), so a sample's age here is the age of
// the fetch; a target that stopped reporting disappears instead of aging.
func (s *PrometheusSource) Fetch(ctx context.Context) (Batch, error) {
	var batch Batch
	var errs []error
	at := s.clock.Now()
	var opts []promv1.Option
	if deadline, ok := ctx.Deadline(); ok {
		// Let Prometheus abandon the evaluation when we stop waiting.
		if timeout := queryTimeout(time.Until(deadline)); timeout > 0 {
			opts = append(opts, promv1.WithTimeout(timeout))
		}
	}
	for _, r := range s.resources {
		value, _, err := s.api.Query(ctx, s.queries[r], at, opts...)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s query: %w", r, err))
			continue
		}
		vector, ok := value.(model.Vector)
		if !ok {
			errs = append(errs, fmt.Errorf("%s query returned a %s, want a vector", r, value.Type()))
			continue
		}
		if len(vector) == 0 {
			// No series is no data, not zero load: count it as a failure.
			errs = append(errs, fmt.Errorf("%s query returned no series", r))
			continue
		}
		seen := make(map[string]bool, len(vector))
		for _, series := range vector {
			node := NodeOf(series.Metric, s.nodeLabels)
			if node == "" {
				batch.Drop(DropNoNode)
				continue
			}
			if seen[node] {
				batch.Drop(DropDuplicateNode)
				continue
			}
			seen[node] = true
			batch.Samples = append(batch.Samples, Sample{
				Node: node, Resource: r, Value: float64(series.Value),
				Time: series.Timestamp.Time(), Source: PrometheusSourceName,
			})
		}
	}
	return batch, errors.Join(errs...)
}

// NodeOf returns the value of the first of labels present on m, without a
// port: the node a series describes. Exporters scraped by instance carry
// "host:port"; the DCGM source reads nodes the same way.
func NodeOf(m model.Metric, labels []model.LabelName) string {
	for _, l := range labels {
		v := string(m[l])
		if v == "" {
			continue
		}
		if host, _, err := net.SplitHostPort(v); err == nil {
			return host
		}
		return v
	}
	return ""
}

// queryTimeout rounds d down so that its String() is a duration Prometheus
// parses: "499ms" or "4s" parse, the fractional "499.97ms" or "1.5s" are
// rejected as bad_data and would fail every query.
func queryTimeout(d time.Duration) time.Duration {
	if d >= time.Second {
		return d.Truncate(time.Second)
	}
	return d.Truncate(time.Millisecond)
}
