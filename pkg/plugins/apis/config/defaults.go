package config

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/harbormaster-dev/harbormaster/pkg/utilization"
)

// Defaults of LoadAwareArgs, documented in docs/scheduling.md.
const (
	DefaultStrategy             = LeastUtilized
	DefaultResourceWeight int64 = 1
	// DefaultTargetPercent leaves headroom for bursts on packed nodes.
	DefaultTargetPercent   int64 = 60
	DefaultStalenessWindow       = 2 * time.Minute
	DefaultEstimationMode        = EstimateRequest
	DefaultRequestPercent  int64 = 100
	// DefaultRefreshInterval matches metrics-server's default resolution
	// and is well below the staleness window.
	DefaultRefreshInterval = 15 * time.Second
	DefaultFetchTimeout    = 5 * time.Second
)

// DefaultPrometheusQueries are node_exporter expressions per resource.
func DefaultPrometheusQueries() map[string]string {
	return map[string]string{
		string(utilization.CPU):    utilization.DefaultPrometheusCPUQuery,
		string(utilization.Memory): utilization.DefaultPrometheusMemoryQuery,
	}
}

// SetDefaultsLoadAwareArgs fills every unset field.
func SetDefaultsLoadAwareArgs(args *LoadAwareArgs) {
	if args.ScoringStrategy == nil {
		args.ScoringStrategy = &ScoringStrategy{}
	}
	s := args.ScoringStrategy
	if s.Type == "" {
		s.Type = DefaultStrategy
	}
	if len(s.Resources) == 0 {
		s.Resources = []ResourceSpec{
			{Name: string(utilization.CPU), Weight: DefaultResourceWeight},
			{Name: string(utilization.Memory), Weight: DefaultResourceWeight},
		}
	}
	for i := range s.Resources {
		if s.Resources[i].TargetPercent == 0 {
			s.Resources[i].TargetPercent = DefaultTargetPercent
		}
	}
	if args.Filter == nil {
		args.Filter = &FilterArgs{}
	}
	if args.StalenessWindow == nil {
		args.StalenessWindow = &metav1.Duration{Duration: DefaultStalenessWindow}
	}
	if args.Estimation == nil {
		args.Estimation = &EstimationArgs{}
	}
	if args.Estimation.Mode == "" {
		args.Estimation.Mode = DefaultEstimationMode
	}
	if args.Estimation.RequestPercent == nil {
		args.Estimation.RequestPercent = ptr.To(DefaultRequestPercent)
	}
	if args.Sources == nil {
		args.Sources = &SourcesArgs{}
	}
	if args.Sources.Prometheus == nil && args.Sources.MetricsServer == nil {
		// metrics-server is the one source a cluster commonly has at a
		// well-known address (the aggregated API).
		args.Sources.MetricsServer = &MetricsServerArgs{}
	}
	if p := args.Sources.Prometheus; p != nil {
		if p.Queries == nil {
			p.Queries = map[string]string{}
		}
		for r, q := range DefaultPrometheusQueries() {
			if p.Queries[r] == "" {
				p.Queries[r] = q
			}
		}
		if len(p.NodeLabels) == 0 {
			p.NodeLabels = utilization.DefaultPrometheusNodeLabels()
		}
		defaultRefresh(&p.RefreshInterval, &p.Timeout)
	}
	if m := args.Sources.MetricsServer; m != nil {
		defaultRefresh(&m.RefreshInterval, &m.Timeout)
	}
	if args.AnnotatePods == nil {
		args.AnnotatePods = ptr.To(true)
	}
}

func defaultRefresh(interval, timeout **metav1.Duration) {
	if *interval == nil {
		*interval = &metav1.Duration{Duration: DefaultRefreshInterval}
	}
	if *timeout == nil {
		*timeout = &metav1.Duration{Duration: min(DefaultFetchTimeout, (*interval).Duration)}
	}
}
