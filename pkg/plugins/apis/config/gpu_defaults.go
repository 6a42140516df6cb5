package config

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// Defaults of GPUArgs, documented in docs/gpu.md.
const (
	DefaultGPUStrategy = GPUStrategyFGD
	// DefaultNonGPUPodPenalty halves a GPU node's attraction for a pod
	// without GPUs: it still goes there when nothing else fits well.
	DefaultNonGPUPodPenalty int64 = 50
	// DefaultWorkloadWindow is several times the number of distinct pod
	// shapes a large cluster sees, so rare shapes are still represented.
	DefaultWorkloadWindow int64 = 10000
	// DefaultUtilizationWeight lets measured load break near-ties without
	// overriding the fragmentation measure.
	DefaultUtilizationWeight int64 = 10
	DefaultDCGMCardLabel           = "gpu"
)

// GPU resource names the strategies weigh.
const (
	GPUResourceGPU    = "nvidia.com/gpu"
	GPUResourceCPU    = "cpu"
	GPUResourceMemory = "memory"
)

// DCGM query keys and their defaults: the DCGM exporter's metric names.
const (
	DCGMQueryUtil   = "util"
	DCGMQueryFBUsed = "fbUsed"
	DCGMQueryFBFree = "fbFree"
)

// DefaultDCGMQueries are the DCGM exporter's metrics, one series per card.
func DefaultDCGMQueries() map[string]string {
	return map[string]string{
		DCGMQueryUtil:   "DCGM_FI_DEV_GPU_UTIL",
		DCGMQueryFBUsed: "DCGM_FI_DEV_FB_USED",
		DCGMQueryFBFree: "DCGM_FI_DEV_FB_FREE",
	}
}

// DefaultDCGMNodeLabels: `node` when relabelling attached the node name,
// else the exporter's own `Hostname`, else the scrape target.
func DefaultDCGMNodeLabels() []string { return []string{"node", "Hostname", "instance"} }

// SetDefaultsGPUArgs fills every unset field.
func SetDefaultsGPUArgs(args *GPUArgs) {
	if args.ScoringStrategy == nil {
		args.ScoringStrategy = &GPUScoringStrategy{}
	}
	if args.ScoringStrategy.Type == "" {
		args.ScoringStrategy.Type = DefaultGPUStrategy
	}
	if len(args.ScoringStrategy.Resources) == 0 {
		args.ScoringStrategy.Resources = []GPUResourceWeight{
			{Name: GPUResourceGPU, Weight: 1}, {Name: GPUResourceCPU, Weight: 1}, {Name: GPUResourceMemory, Weight: 1},
		}
	}
	if args.NonGPUPodPenalty == nil {
		args.NonGPUPodPenalty = ptr.To(DefaultNonGPUPodPenalty)
	}
	if args.Workload == nil {
		args.Workload = &GPUWorkloadArgs{}
	}
	if args.Workload.Window == nil {
		args.Workload.Window = ptr.To(DefaultWorkloadWindow)
	}
	if args.Utilization == nil {
		args.Utilization = &GPUUtilizationArgs{}
	}
	u := args.Utilization
	if u.Weight == nil {
		u.Weight = ptr.To(DefaultUtilizationWeight)
	}
	if u.StalenessWindow == nil {
		u.StalenessWindow = &metav1.Duration{Duration: DefaultStalenessWindow}
	}
	if u.FilterOnMemory == nil {
		u.FilterOnMemory = ptr.To(true)
	}
	if p := u.Prometheus; p != nil {
		if p.Queries == nil {
			p.Queries = map[string]string{}
		}
		for k, q := range DefaultDCGMQueries() {
			if p.Queries[k] == "" {
				p.Queries[k] = q
			}
		}
		if len(p.NodeLabels) == 0 {
			p.NodeLabels = DefaultDCGMNodeLabels()
		}
		if p.CardLabel == "" {
			p.CardLabel = DefaultDCGMCardLabel
		}
		defaultRefresh(&p.RefreshInterval, &p.Timeout)
	}
}
