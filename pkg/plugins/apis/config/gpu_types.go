package config

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// GPUArgsKind is the kind of HarbormasterGPU's args.
const GPUArgsKind = "HarbormasterGPUArgs"

// GPUArgs configures the HarbormasterGPU scheduler plugin.
type GPUArgs struct {
	metav1.TypeMeta `json:",inline"`

	// ScoringStrategy chooses where among the feasible nodes, and on which
	// cards, a pod goes.
	ScoringStrategy *GPUScoringStrategy `json:"scoringStrategy,omitempty"`
	// NonGPUPodPenalty, in [0, 100], is taken from a GPU node's score (in
	// percent of the range) for a pod that needs no GPU, so such pods
	// leave GPU nodes' CPU and memory to GPU pods. 0 disables it; 100
	// ranks every node without GPUs above every GPU node.
	NonGPUPodPenalty *int64 `json:"nonGPUPodPenalty,omitempty"`
	// Workload configures how the mix of pods the cluster receives is
	// learned (the target workload of FGD).
	Workload *GPUWorkloadArgs `json:"workload,omitempty"`
	// Utilization configures real per-card load from DCGM.
	Utilization *GPUUtilizationArgs `json:"utilization,omitempty"`
}

// GPUStrategyType names a GPU placement strategy.
type GPUStrategyType string

// The strategies; FGD is the default, the others are baselines.
const (
	GPUStrategyFGD        GPUStrategyType = "FGD"
	GPUStrategyBestFit    GPUStrategyType = "BestFit"
	GPUStrategyPacking    GPUStrategyType = "Packing"
	GPUStrategySpread     GPUStrategyType = "Spread"
	GPUStrategyDotProduct GPUStrategyType = "DotProduct"
	GPUStrategyRandom     GPUStrategyType = "Random"
)

// GPUScoringStrategy is a strategy and the weights of the resources it
// looks at (all but FGD, which measures GPU fragmentation only).
type GPUScoringStrategy struct {
	Type      GPUStrategyType     `json:"type,omitempty"`
	Resources []GPUResourceWeight `json:"resources,omitempty"`
}

// GPUResourceWeight weighs nvidia.com/gpu, cpu or memory.
type GPUResourceWeight struct {
	Name   string `json:"name"`
	Weight int64  `json:"weight"`
}

// GPUWorkloadArgs configures the learned workload mix.
type GPUWorkloadArgs struct {
	// Window is how many of the most recently observed pods the mix
	// reflects, in [1, 1000000].
	Window *int64 `json:"window,omitempty"`
}

// GPUUtilizationArgs configures real GPU load.
type GPUUtilizationArgs struct {
	// Weight, in [0, 100], is the percent of a shared pod's score that
	// comes from the chosen card's measured idleness rather than from the
	// strategy. Unknown utilisation scores neutral.
	Weight *int64 `json:"weight,omitempty"`
	// StalenessWindow is how long a sample counts as known.
	StalenessWindow *metav1.Duration `json:"stalenessWindow,omitempty"`
	// FilterOnMemory keeps a shared pod off a card whose measured free
	// framebuffer is below the pod's share of the card's framebuffer.
	FilterOnMemory *bool `json:"filterOnMemory,omitempty"`
	// Prometheus is where DCGM exporter metrics are read; without it every
	// card's load is unknown.
	Prometheus *DCGMPrometheusArgs `json:"prometheus,omitempty"`
}

// DCGMPrometheusArgs reads DCGM exporter metrics from Prometheus.
type DCGMPrometheusArgs struct {
	// Address is the base URL of the Prometheus HTTP API.
	Address string `json:"address"`
	// Queries maps util, fbUsed and fbFree to instant-vector PromQL with
	// one series per card: utilisation in percent, framebuffer used and
	// free in MiB. Missing ones get the DCGM metric names.
	Queries map[string]string `json:"queries,omitempty"`
	// NodeLabels carry the node, first present wins.
	NodeLabels []string `json:"nodeLabels,omitempty"`
	// CardLabel carries the card index.
	CardLabel       string           `json:"cardLabel,omitempty"`
	RefreshInterval *metav1.Duration `json:"refreshInterval,omitempty"`
	Timeout         *metav1.Duration `json:"timeout,omitempty"`
}
