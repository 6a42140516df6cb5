package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/harbormaster-dev/harbormaster/pkg/configstore"
	"github.com/harbormaster-dev/harbormaster/pkg/decisionlog"
	"github.com/harbormaster-dev/harbormaster/pkg/webhook"
	"github.com/harbormaster-dev/harbormaster/test/framework"
)

// TestGrafanaDashboardQueriesAreValid has a real Prometheus parse and run
// every query of the shipped dashboard, and checks every Harbormaster metric
// it reads is one the components export.
func TestGrafanaDashboardQueriesAreValid(t *testing.T) {
	root, err := framework.RepoRoot()
	require.NoError(t, err)
	raw, err := os.ReadFile(filepath.Join(root, "manifests", "grafana", "harbormaster-dashboard.json"))
	require.NoError(t, err)
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	require.NoError(t, json.Unmarshal(raw, &dash))
	require.NotEmpty(t, dash.Panels)

	exported := exportedMetricNames(t, root)
	prom := framework.RunPrometheus(t, framework.PrometheusOptions{})
	metricName := regexp.MustCompile(`harbormaster_[a-z_]+`)
	for _, p := range dash.Panels {
		require.NotEmpty(t, p.Targets, p.Title)
		for _, target := range p.Targets {
			_, err := prom.Query(t.Context(), target.Expr)
			require.NoError(t, err, "panel %q: %s", p.Title, target.Expr)
			for _, name := range metricName.FindAllString(target.Expr, -1) {
				name = strings.TrimSuffix(name, "_bucket")
				require.True(t, exported[name], "panel %q reads %s, which no component exports", p.Title, name)
			}
		}
	}
}

// exportedMetricNames lists the metrics of the webhook's registries and
// those the utilisation pipeline declares.
func exportedMetricNames(t *testing.T, root string) map[string]bool {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	webhook.NewMetrics(reg)
	webhook.NewPolicyMetrics(reg)
	configstore.NewMetrics(reg)
	decisionlog.NewMetrics(reg)
	names := map[string]bool{}
	ch := make(chan *prometheus.Desc, 64)
	go func() {
		reg.Describe(ch)
		close(ch)
	}()
	descName := regexp.MustCompile(`fqName: "([^"]+)"`)
	for d := range ch {
		if m := descName.FindStringSubmatch(d.String()); m != nil {
			names[m[1]] = true
		}
	}
	// The pipeline's metrics are built from a namespace constant.
	src, err := os.ReadFile(filepath.Join(root, "pkg", "utilization", "metrics.go"))
	require.NoError(t, err)
	for _, m := range regexp.MustCompile(`(?:Name: |metricsNamespace\+)"_?([a-z_]+)"`).FindAllStringSubmatch(string(src), -1) {
		names["harbormaster_utilization_"+strings.TrimPrefix(m[1], "_")] = true
	}
	require.Contains(t, names, "harbormaster_admission_requests_total")
	require.Contains(t, names, "harbormaster_utilization_fetch_errors_total")
	return names
}
