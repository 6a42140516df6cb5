package config

import (
	"maps"

	"k8s.io/apimachinery/pkg/runtime"
)

var _ runtime.Object = &GPUArgs{}

// DeepCopyObject implements runtime.Object.
func (in *GPUArgs) DeepCopyObject() runtime.Object {
	if c := in.DeepCopy(); c != nil {
		return c
	}
	return nil
}

// DeepCopy returns a copy sharing no memory with in.
func (in *GPUArgs) DeepCopy() *GPUArgs {
	if in == nil {
		return nil
	}
	out := &GPUArgs{TypeMeta: in.TypeMeta, NonGPUPodPenalty: copyPtr(in.NonGPUPodPenalty)}
	if s := in.ScoringStrategy; s != nil {
		out.ScoringStrategy = &GPUScoringStrategy{Type: s.Type, Resources: append([]GPUResourceWeight(nil), s.Resources...)}
	}
	if w := in.Workload; w != nil {
		out.Workload = &GPUWorkloadArgs{Window: copyPtr(w.Window)}
	}
	if u := in.Utilization; u != nil {
		c := GPUUtilizationArgs{
			Weight:          copyPtr(u.Weight),
			StalenessWindow: copyDuration(u.StalenessWindow),
			FilterOnMemory:  copyPtr(u.FilterOnMemory),
		}
		if p := u.Prometheus; p != nil {
			c.Prometheus = &DCGMPrometheusArgs{
				Address:         p.Address,
				Queries:         maps.Clone(p.Queries),
				NodeLabels:      append([]string(nil), p.NodeLabels...),
				CardLabel:       p.CardLabel,
				RefreshInterval: copyDuration(p.RefreshInterval),
				Timeout:         copyDuration(p.Timeout),
			}
		}
		out.Utilization = &c
	}
	return out
}
