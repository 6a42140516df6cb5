package config

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// Hand-written deep copies: the package has too few types to justify
// running deepcopy-gen, and *LoadAwareArgs must be a runtime.Object so it
// can be passed to the plugin factory directly.

var _ runtime.Object = &LoadAwareArgs{}

// DeepCopyObject implements runtime.Object.
func (in *LoadAwareArgs) DeepCopyObject() runtime.Object {
	if c := in.DeepCopy(); c != nil {
		return c
	}
	return nil
}

// DeepCopy returns a copy sharing no memory with in.
func (in *LoadAwareArgs) DeepCopy() *LoadAwareArgs {
	if in == nil {
		return nil
	}
	out := &LoadAwareArgs{TypeMeta: in.TypeMeta}
	if in.ScoringStrategy != nil {
		s := *in.ScoringStrategy
		s.Resources = append([]ResourceSpec(nil), in.ScoringStrategy.Resources...)
		out.ScoringStrategy = &s
	}
	if in.Filter != nil {
		f := FilterArgs{Thresholds: append([]ResourceThreshold(nil), in.Filter.Thresholds...)}
		out.Filter = &f
	}
	out.StalenessWindow = copyDuration(in.StalenessWindow)
	if in.Estimation != nil {
		e := EstimationArgs{Mode: in.Estimation.Mode, RequestPercent: copyPtr(in.Estimation.RequestPercent)}
		out.Estimation = &e
	}
	if in.Sources != nil {
		out.Sources = &SourcesArgs{}
		if p := in.Sources.Prometheus; p != nil {
			c := PrometheusArgs{
				Address:         p.Address,
				NodeLabels:      append([]string(nil), p.NodeLabels...),
				RefreshInterval: copyDuration(p.RefreshInterval),
				Timeout:         copyDuration(p.Timeout),
			}
			if p.Queries != nil {
				c.Queries = make(map[string]string, len(p.Queries))
				for k, v := range p.Queries {
					c.Queries[k] = v
				}
			}
			out.Sources.Prometheus = &c
		}
		if m := in.Sources.MetricsServer; m != nil {
			out.Sources.MetricsServer = &MetricsServerArgs{
				RefreshInterval: copyDuration(m.RefreshInterval),
				Timeout:         copyDuration(m.Timeout),
			}
		}
	}
	out.AnnotatePods = copyPtr(in.AnnotatePods)
	return out
}

func copyDuration(d *metav1.Duration) *metav1.Duration { return copyPtr(d) }

func copyPtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}
