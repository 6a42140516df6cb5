package config

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

func TestDefaults(t *testing.T) {
	args, err := DecodeLoadAwareArgs(nil)
	require.NoError(t, err)
	want := &LoadAwareArgs{
		ScoringStrategy: &ScoringStrategy{Type: LeastUtilized, Resources: []ResourceSpec{
			{Name: "cpu", Weight: 1, TargetPercent: 60},
			{Name: "memory", Weight: 1, TargetPercent: 60},
		}},
		Filter:          &FilterArgs{},
		StalenessWindow: &metav1.Duration{Duration: 2 * time.Minute},
		Estimation:      &EstimationArgs{Mode: EstimateRequest, RequestPercent: ptr.To[int64](100)},
		Sources: &SourcesArgs{MetricsServer: &MetricsServerArgs{
			RefreshInterval: &metav1.Duration{Duration: 15 * time.Second},
			Timeout:         &metav1.Duration{Duration: 5 * time.Second},
		}},
		AnnotatePods: ptr.To(true),
	}
	assert.Equal(t, want, args)
}

func TestDefaultsFillPrometheus(t *testing.T) {
	args := &LoadAwareArgs{Sources: &SourcesArgs{Prometheus: &PrometheusArgs{
		Address: "http://prometheus:9090",
		Queries: map[string]string{"cpu": "my_cpu"},
	}}}
	SetDefaultsLoadAwareArgs(args)
	p := args.Sources.Prometheus
	assert.Nil(t, args.Sources.MetricsServer, "an explicit source replaces the metrics-server default")
	assert.Equal(t, "my_cpu", p.Queries["cpu"])
	assert.Contains(t, p.Queries["memory"], "node_memory_MemAvailable_bytes")
	assert.Equal(t, []string{"node", "instance"}, p.NodeLabels)
	assert.Equal(t, 15*time.Second, p.RefreshInterval.Duration)
	assert.Equal(t, 5*time.Second, p.Timeout.Duration)

	short := &LoadAwareArgs{Sources: &SourcesArgs{MetricsServer: &MetricsServerArgs{RefreshInterval: &metav1.Duration{Duration: 2 * time.Second}}}}
	SetDefaultsLoadAwareArgs(short)
	assert.Equal(t, 2*time.Second, short.Sources.MetricsServer.Timeout.Duration, "the default timeout never exceeds the interval")
}

func TestDecodeFromSchedulerConfig(t *testing.T) {
	raw := `{"apiVersion":"kubescheduler.config.k8s.io/v1","kind":"HarbormasterLoadAwareArgs",
	  "scoringStrategy":{"type":"TargetUtilization","resources":[{"name":"cpu","weight":3,"targetPercent":70}]},
	  "filter":{"thresholds":[{"name":"cpu","percent":90}]},
	  "stalenessWindow":"30s",
	  "estimation":{"mode":"Limit","requestPercent":150},
	  "sources":{"prometheus":{"address":"http://p:9090","nodeLabels":["node"],"refreshInterval":"5s","timeout":"2s"}},
	  "annotatePods":false}`
	args, err := DecodeLoadAwareArgs(&runtime.Unknown{Raw: []byte(raw), ContentType: runtime.ContentTypeJSON})
	require.NoError(t, err)
	assert.Equal(t, TargetUtilization, args.ScoringStrategy.Type)
	assert.Equal(t, []ResourceSpec{{Name: "cpu", Weight: 3, TargetPercent: 70}}, args.ScoringStrategy.Resources)
	assert.Equal(t, []ResourceThreshold{{Name: "cpu", Percent: 90}}, args.Filter.Thresholds)
	assert.Equal(t, 30*time.Second, args.StalenessWindow.Duration)
	assert.Equal(t, EstimateLimit, args.Estimation.Mode)
	assert.Equal(t, int64(150), *args.Estimation.RequestPercent)
	assert.Equal(t, 5*time.Second, args.Sources.Prometheus.RefreshInterval.Duration)
	assert.False(t, *args.AnnotatePods)

	yamlArgs := "scoringStrategy:\n  type: LeastUtilized\nstalenessWindow: 1m\n"
	args, err = DecodeLoadAwareArgs(&runtime.Unknown{Raw: []byte(yamlArgs), ContentType: runtime.ContentTypeYAML})
	require.NoError(t, err)
	assert.Equal(t, time.Minute, args.StalenessWindow.Duration)
}

func TestDecodeIsStrict(t *testing.T) {
	_, err := DecodeLoadAwareArgs(&runtime.Unknown{Raw: []byte(`{"stalenesWindow":"30s"}`)})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "stalenesWindow", "a misspelt field is reported, not ignored")

	_, err = DecodeLoadAwareArgs(&runtime.Unknown{Raw: []byte(`{"kind":"TargetLoadPackingArgs"}`)})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "args.kind")

	_, err = DecodeLoadAwareArgs(&metav1.Status{})
	assert.ErrorContains(t, err, "want args of type")
}

func TestDecodeTypedArgsIsCopied(t *testing.T) {
	in := &LoadAwareArgs{StalenessWindow: &metav1.Duration{Duration: time.Minute}}
	out, err := DecodeLoadAwareArgs(in)
	require.NoError(t, err)
	assert.Nil(t, in.ScoringStrategy, "defaulting must not write through to the caller's object")
	out.StalenessWindow.Duration = time.Hour
	assert.Equal(t, time.Minute, in.StalenessWindow.Duration)

	full, err := DecodeLoadAwareArgs(nil)
	require.NoError(t, err)
	full.Filter.Thresholds = []ResourceThreshold{{Name: "cpu", Percent: 50}}
	full.Sources.Prometheus = &PrometheusArgs{Queries: map[string]string{"cpu": "q"}, NodeLabels: []string{"node"}}
	assert.Equal(t, full, full.DeepCopyObject())
}

// Each invalid input names the offending field path.
func TestValidation(t *testing.T) {
	prom := func(mut func(*PrometheusArgs)) func(*LoadAwareArgs) {
		return func(a *LoadAwareArgs) {
			a.Sources = &SourcesArgs{Prometheus: &PrometheusArgs{Address: "http://p:9090"}}
			SetDefaultsLoadAwareArgs(a)
			mut(a.Sources.Prometheus)
		}
	}
	for _, tc := range []struct {
		name    string
		mutate  func(*LoadAwareArgs)
		wantErr string
	}{
		{"valid defaults", func(*LoadAwareArgs) {}, ""},
		{"unknown strategy", func(a *LoadAwareArgs) { a.ScoringStrategy.Type = "MostAllocated" },
			`args.scoringStrategy.type: Unsupported value: "MostAllocated"`},
		{"unknown resource", func(a *LoadAwareArgs) { a.ScoringStrategy.Resources[1].Name = "gpu" },
			`args.scoringStrategy.resources[1].name: Unsupported value: "gpu"`},
		{"duplicate resource", func(a *LoadAwareArgs) { a.ScoringStrategy.Resources[1].Name = "cpu" },
			`args.scoringStrategy.resources[1].name: Duplicate value: "cpu"`},
		{"weight too large", func(a *LoadAwareArgs) { a.ScoringStrategy.Resources[0].Weight = 101 },
			`args.scoringStrategy.resources[0].weight: Invalid value: 101`},
		{"all weights zero", func(a *LoadAwareArgs) {
			a.ScoringStrategy.Resources[0].Weight = 0
			a.ScoringStrategy.Resources[1].Weight = 0
		}, `args.scoringStrategy.resources: Invalid value`},
		{"target 100 with TargetUtilization", func(a *LoadAwareArgs) {
			a.ScoringStrategy.Type = TargetUtilization
			a.ScoringStrategy.Resources[0].TargetPercent = 100
		}, `args.scoringStrategy.resources[0].targetPercent: Invalid value: 100`},
		{"target ignored by LeastUtilized", func(a *LoadAwareArgs) { a.ScoringStrategy.Resources[0].TargetPercent = 100 }, ""},
		{"threshold out of range", func(a *LoadAwareArgs) {
			a.Filter.Thresholds = []ResourceThreshold{{Name: "cpu", Percent: 0}}
		}, `args.filter.thresholds[0].percent: Invalid value: 0`},
		{"threshold resource", func(a *LoadAwareArgs) {
			a.Filter.Thresholds = []ResourceThreshold{{Name: "cpu", Percent: 80}, {Name: "disk", Percent: 80}}
		}, `args.filter.thresholds[1].name: Unsupported value: "disk"`},
		{"zero window", func(a *LoadAwareArgs) { a.StalenessWindow.Duration = 0 },
			`args.stalenessWindow: Invalid value: "0s"`},
		{"window shorter than refresh", func(a *LoadAwareArgs) { a.StalenessWindow.Duration = 10 * time.Second },
			`args.sources.metricsServer.refreshInterval: Invalid value: "15s": must be shorter than stalenessWindow`},
		{"estimation mode", func(a *LoadAwareArgs) { a.Estimation.Mode = "Guess" },
			`args.estimation.mode: Unsupported value: "Guess"`},
		{"request percent", func(a *LoadAwareArgs) { a.Estimation.RequestPercent = ptr.To[int64](0) },
			`args.estimation.requestPercent: Invalid value: 0`},
		{"no prometheus address", prom(func(p *PrometheusArgs) { p.Address = "" }),
			`args.sources.prometheus.address: Required value`},
		{"bad prometheus address", prom(func(p *PrometheusArgs) { p.Address = "prometheus:9090" }),
			`args.sources.prometheus.address: Invalid value: "prometheus:9090"`},
		{"query for unknown resource", prom(func(p *PrometheusArgs) { p.Queries["gpu"] = "x" }),
			`args.sources.prometheus.queries[gpu]: Unsupported value: "gpu"`},
		{"empty node label", prom(func(p *PrometheusArgs) { p.NodeLabels = []string{"node", ""} }),
			`args.sources.prometheus.nodeLabels[1]: Required value`},
		{"timeout above interval", prom(func(p *PrometheusArgs) { p.Timeout.Duration = time.Minute }),
			`args.sources.prometheus.timeout: Invalid value: "1m0s": must not exceed refreshInterval`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := &LoadAwareArgs{}
			SetDefaultsLoadAwareArgs(args)
			tc.mutate(args)
			// Paths are relative to the caller's; Decode passes "args".
			err := ValidateLoadAwareArgs(field.NewPath("args"), args)
			if tc.wantErr == "" {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.wantErr)
		})
	}
}
