// Package config holds the typed arguments of Harbormaster's scheduler
// plugins, with their defaults and validation.
//
// The argument kinds are not registered in the kube-scheduler config scheme
// (that would need versioned and internal copies plus generated conversion,
// as sigs.k8s.io/scheduler-plugins/apis/config has). The scheduler therefore
// hands a plugin its pluginConfig args as a *runtime.Unknown, which Decode*
// functions here turn into the typed struct strictly (unknown fields are
// errors), then default and validate. `apiVersion` and `kind` inside args
// are optional; when present they must name this package's kind.
package config

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// LoadAwareArgsKind is the kind of HarbormasterLoadAware's args.
const LoadAwareArgsKind = "HarbormasterLoadAwareArgs"

// LoadAwareArgs configures the HarbormasterLoadAware scheduler plugin.
type LoadAwareArgs struct {
	metav1.TypeMeta `json:",inline"`

	// ScoringStrategy turns utilisation into a node score.
	ScoringStrategy *ScoringStrategy `json:"scoringStrategy,omitempty"`
	// Filter optionally keeps non-critical pods off nodes whose measured
	// utilisation is above a threshold.
	Filter *FilterArgs `json:"filter,omitempty"`
	// StalenessWindow is how long a sample counts as known after its
	// timestamp. Older samples are unknown, which scores neutral.
	StalenessWindow *metav1.Duration `json:"stalenessWindow,omitempty"`
	// Estimation covers pods bound since a node's last sample.
	Estimation *EstimationArgs `json:"estimation,omitempty"`
	// Sources are where utilisation comes from.
	Sources *SourcesArgs `json:"sources,omitempty"`
	// AnnotatePods writes the score explanation to each placed pod's
	// harbormaster.io/score annotation (one PATCH per pod).
	AnnotatePods *bool `json:"annotatePods,omitempty"`
}

// StrategyType names a scoring strategy.
type StrategyType string

const (
	// LeastUtilized prefers the node with the lowest utilisation, spreading
	// load away from hot spots.
	LeastUtilized StrategyType = "LeastUtilized"
	// TargetUtilization packs nodes up to a target utilisation, then backs
	// off (Trimaran's TargetLoadPacking).
	TargetUtilization StrategyType = "TargetUtilization"
)

// ScoringStrategy mirrors the shape of the in-tree NodeResourcesFit
// scoringStrategy: a type and weighted resources.
type ScoringStrategy struct {
	Type      StrategyType   `json:"type,omitempty"`
	Resources []ResourceSpec `json:"resources,omitempty"`
}

// ResourceSpec weighs one resource in the score.
type ResourceSpec struct {
	// Name is cpu or memory.
	Name string `json:"name"`
	// Weight in [0, 100]; 0 ignores the resource (and skips fetching it
	// unless a filter threshold needs it).
	Weight int64 `json:"weight"`
	// TargetPercent in [1, 99] is the utilisation TargetUtilization packs
	// up to; ignored by LeastUtilized.
	TargetPercent int64 `json:"targetPercent,omitempty"`
}

// FilterArgs enables the Filter extension point.
type FilterArgs struct {
	// Thresholds reject a node for non-critical pods when its measured
	// utilisation of a resource is above the percent. Empty disables Filter.
	Thresholds []ResourceThreshold `json:"thresholds,omitempty"`
}

// ResourceThreshold is a utilisation limit for one resource.
type ResourceThreshold struct {
	Name    string `json:"name"`
	Percent int64  `json:"percent"`
}

// EstimationMode says how a pod bound after a node's last sample is
// assumed to load the node.
type EstimationMode string

const (
	// EstimateNone ignores pods bound since the sample.
	EstimateNone EstimationMode = "None"
	// EstimateRequest assumes each pod uses its request (with the
	// scheduler's non-zero defaults for pods without one) times
	// RequestPercent/100.
	EstimateRequest EstimationMode = "Request"
	// EstimateLimit assumes each pod uses its limit, falling back to
	// Request when a container has none.
	EstimateLimit EstimationMode = "Limit"
)

// EstimationArgs configures estimation of not-yet-measured pods.
type EstimationArgs struct {
	Mode EstimationMode `json:"mode,omitempty"`
	// RequestPercent scales requests in Request mode (and the fallback of
	// Limit mode), in [1, 1000].
	RequestPercent *int64 `json:"requestPercent,omitempty"`
}

// SourcesArgs selects utilisation sources. With neither set,
// metrics.k8s.io is used.
type SourcesArgs struct {
	Prometheus    *PrometheusArgs    `json:"prometheus,omitempty"`
	MetricsServer *MetricsServerArgs `json:"metricsServer,omitempty"`
}

// PrometheusArgs configures the Prometheus source.
type PrometheusArgs struct {
	// Address is the base URL of the Prometheus HTTP API.
	Address string `json:"address"`
	// Queries maps cpu and memory to PromQL instant-vector expressions
	// yielding a fraction per node; missing ones get node_exporter defaults.
	Queries map[string]string `json:"queries,omitempty"`
	// NodeLabels are label names carrying the node, first present wins.
	NodeLabels      []string         `json:"nodeLabels,omitempty"`
	RefreshInterval *metav1.Duration `json:"refreshInterval,omitempty"`
	Timeout         *metav1.Duration `json:"timeout,omitempty"`
}

// MetricsServerArgs configures the metrics.k8s.io source.
type MetricsServerArgs struct {
	RefreshInterval *metav1.Duration `json:"refreshInterval,omitempty"`
	Timeout         *metav1.Duration `json:"timeout,omitempty"`
}
