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

func TestGPUDefaults(t *testing.T) {
	args, err := DecodeGPUArgs(nil)
	require.NoError(t, err)
	want := &GPUArgs{
		ScoringStrategy: &GPUScoringStrategy{Type: GPUStrategyFGD, Resources: []GPUResourceWeight{
			{Name: "nvidia.com/gpu", Weight: 1}, {Name: "cpu", Weight: 1}, {Name: "memory", Weight: 1},
		}},
		NonGPUPodPenalty: ptr.To[int64](50),
		Workload:         &GPUWorkloadArgs{Window: ptr.To[int64](10000)},
		Utilization: &GPUUtilizationArgs{
			Weight:          ptr.To[int64](10),
			StalenessWindow: &metav1.Duration{Duration: 2 * time.Minute},
			FilterOnMemory:  ptr.To(true),
		},
	}
	assert.Equal(t, want, args)
}

func TestGPUDecodeFromSchedulerConfig(t *testing.T) {
	raw := `apiVersion: kubescheduler.config.k8s.io/v1
kind: HarbormasterGPUArgs
scoringStrategy:
  type: BestFit
  resources:
  - {name: nvidia.com/gpu, weight: 3}
  - {name: cpu, weight: 1}
nonGPUPodPenalty: 100
workload: {window: 500}
utilization:
  weight: 20
  stalenessWindow: 30s
  prometheus:
    address: http://prometheus:9090
    queries: {util: my_util}
    refreshInterval: 5s
`
	args, err := DecodeGPUArgs(&runtime.Unknown{Raw: []byte(raw), ContentType: runtime.ContentTypeYAML})
	require.NoError(t, err)
	assert.Equal(t, GPUStrategyBestFit, args.ScoringStrategy.Type)
	assert.Equal(t, []GPUResourceWeight{{Name: "nvidia.com/gpu", Weight: 3}, {Name: "cpu", Weight: 1}}, args.ScoringStrategy.Resources)
	assert.Equal(t, int64(100), *args.NonGPUPodPenalty)
	assert.Equal(t, int64(500), *args.Workload.Window)
	p := args.Utilization.Prometheus
	assert.Equal(t, map[string]string{"util": "my_util", "fbUsed": "DCGM_FI_DEV_FB_USED", "fbFree": "DCGM_FI_DEV_FB_FREE"}, p.Queries)
	assert.Equal(t, []string{"node", "Hostname", "instance"}, p.NodeLabels)
	assert.Equal(t, "gpu", p.CardLabel)
	assert.Equal(t, 5*time.Second, p.Timeout.Duration)

	_, err = DecodeGPUArgs(&runtime.Unknown{Raw: []byte(`{"scoringStrategy":{"typ":"FGD"}}`)})
	assert.ErrorContains(t, err, "typ", "strict decoding names the misspelt field")
	_, err = DecodeGPUArgs(&LoadAwareArgs{})
	assert.ErrorContains(t, err, "want args of type HarbormasterGPUArgs")
}

func TestGPUDeepCopy(t *testing.T) {
	in := &GPUArgs{Utilization: &GPUUtilizationArgs{Prometheus: &DCGMPrometheusArgs{Address: "http://p:9090"}}}
	out, err := DecodeGPUArgs(in)
	require.NoError(t, err)
	assert.Nil(t, in.ScoringStrategy, "defaulting does not write through")
	assert.Nil(t, in.Utilization.Prometheus.Queries)
	assert.Equal(t, out, out.DeepCopyObject())
	out.Utilization.Prometheus.Queries["util"] = "changed"
	c := out.DeepCopy()
	c.Utilization.Prometheus.Queries["util"] = "again"
	assert.Equal(t, "changed", out.Utilization.Prometheus.Queries["util"])
}

func TestGPUValidation(t *testing.T) {
	prom := func(mut func(*DCGMPrometheusArgs)) func(*GPUArgs) {
		return func(a *GPUArgs) {
			a.Utilization.Prometheus = &DCGMPrometheusArgs{Address: "http://p:9090"}
			SetDefaultsGPUArgs(a)
			mut(a.Utilization.Prometheus)
		}
	}
	for _, tc := range []struct {
		name    string
		mutate  func(*GPUArgs)
		wantErr string
	}{
		{"valid defaults", func(*GPUArgs) {}, ""},
		{"every strategy", func(a *GPUArgs) { a.ScoringStrategy.Type = GPUStrategyRandom }, ""},
		{"unknown strategy", func(a *GPUArgs) { a.ScoringStrategy.Type = "WorstFit" },
			`args.scoringStrategy.type: Unsupported value: "WorstFit"`},
		{"unknown resource", func(a *GPUArgs) { a.ScoringStrategy.Resources[2].Name = "disk" },
			`args.scoringStrategy.resources[2].name: Unsupported value: "disk"`},
		{"duplicate resource", func(a *GPUArgs) { a.ScoringStrategy.Resources[1].Name = "nvidia.com/gpu" },
			`args.scoringStrategy.resources[1].name: Duplicate value: "nvidia.com/gpu"`},
		{"weight", func(a *GPUArgs) { a.ScoringStrategy.Resources[0].Weight = -1 },
			`args.scoringStrategy.resources[0].weight: Invalid value: -1: must be in [0, 100]`},
		{"all weights zero", func(a *GPUArgs) { a.ScoringStrategy.Resources = []GPUResourceWeight{{Name: "cpu"}} },
			`args.scoringStrategy.resources: Invalid value`},
		{"penalty", func(a *GPUArgs) { a.NonGPUPodPenalty = ptr.To[int64](101) },
			`args.nonGPUPodPenalty: Invalid value: 101: must be in [0, 100]`},
		{"window", func(a *GPUArgs) { a.Workload.Window = ptr.To[int64](0) },
			`args.workload.window: Invalid value: 0`},
		{"utilisation weight", func(a *GPUArgs) { a.Utilization.Weight = ptr.To[int64](200) },
			`args.utilization.weight: Invalid value: 200`},
		{"staleness", func(a *GPUArgs) { a.Utilization.StalenessWindow.Duration = 0 },
			`args.utilization.stalenessWindow: Invalid value: "0s"`},
		{"address", prom(func(p *DCGMPrometheusArgs) { p.Address = "" }),
			`args.utilization.prometheus.address: Required value`},
		{"address scheme", prom(func(p *DCGMPrometheusArgs) { p.Address = "prometheus:9090" }),
			`args.utilization.prometheus.address: Invalid value`},
		{"query key", prom(func(p *DCGMPrometheusArgs) { p.Queries["temp"] = "x" }),
			`args.utilization.prometheus.queries[temp]: Unsupported value: "temp"`},
		{"card label", prom(func(p *DCGMPrometheusArgs) { p.CardLabel = "" }),
			`args.utilization.prometheus.cardLabel: Required value`},
		{"refresh vs window", prom(func(p *DCGMPrometheusArgs) {
			p.RefreshInterval.Duration = 5 * time.Minute
			p.Timeout.Duration = time.Second
		}),
			`args.utilization.prometheus.refreshInterval: Invalid value: "5m0s": must be shorter than stalenessWindow`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := &GPUArgs{}
			SetDefaultsGPUArgs(args)
			tc.mutate(args)
			err := ValidateGPUArgs(field.NewPath("args"), args)
			if tc.wantErr == "" {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.wantErr)
		})
	}
}
