package utilization

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"
	metricsclient "k8s.io/metrics/pkg/client/clientset/versioned"
)

// MetricsServerSourceName labels samples and metrics of the metrics.k8s.io
// source.
const MetricsServerSourceName = "metrics-server"

// NodeMetricsLister lists metrics.k8s.io NodeMetrics.
type NodeMetricsLister func(ctx context.Context) ([]metricsv1beta1.NodeMetrics, error)

// ListNodeMetrics adapts a metrics.k8s.io clientset.
func ListNodeMetrics(c metricsclient.Interface) NodeMetricsLister {
	return func(ctx context.Context) ([]metricsv1beta1.NodeMetrics, error) {
		list, err := c.MetricsV1beta1().NodeMetricses().List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, err
		}
		return list.Items, nil
	}
}

// NodeGetter returns a node by name from a cache; false if unknown.
type NodeGetter func(name string) (*corev1.Node, bool)

// NodeMetricsSource turns metrics-server usage into fractions of each
// node's allocatable.
type NodeMetricsSource struct {
	list      NodeMetricsLister
	node      NodeGetter
	resources []Resource
}

var _ Source = &NodeMetricsSource{}

// NewNodeMetricsSource reads the given resources from list, dividing by
// the allocatable of the node node returns.
func NewNodeMetricsSource(list NodeMetricsLister, node NodeGetter, resources []Resource) *NodeMetricsSource {
	return &NodeMetricsSource{list: list, node: node, resources: resources}
}

// Name implements Source.
func (s *NodeMetricsSource) Name() string { return MetricsServerSourceName }

// Fetch lists NodeMetrics once. Usage above allocatable but within capacity
// is real (system daemons run outside allocatable) and reads as 100%; usage
// above capacity is dropped as implausible.
func (s *NodeMetricsSource) Fetch(ctx context.Context) (Batch, error) {
	var batch Batch
	items, err := s.list(ctx)
	if err != nil {
		return batch, fmt.Errorf("listing NodeMetrics: %w", err)
	}
	if len(items) == 0 {
		return batch, errors.New("metrics.k8s.io returned no NodeMetrics")
	}
	for i := range items {
		m := &items[i]
		node, ok := s.node(m.Name)
		for _, r := range s.resources {
			name := corev1.ResourceName(r)
			usage, hasUsage := m.Usage[name]
			if !hasUsage {
				continue
			}
			if !ok {
				batch.Drop(DropNoAllocatable)
				continue
			}
			alloc := node.Status.Allocatable[name]
			capacity := node.Status.Capacity[name]
			if alloc.IsZero() {
				batch.Drop(DropNoAllocatable)
				continue
			}
			value := fraction(usage, alloc)
			if value > 1 && (capacity.IsZero() || usage.Cmp(capacity) <= 0) {
				value = 1
			}
			batch.Samples = append(batch.Samples, Sample{
				Node: m.Name, Resource: r, Value: value, Time: m.Timestamp.Time, Source: MetricsServerSourceName,
			})
		}
	}
	return batch, nil
}

func fraction(usage, total resource.Quantity) float64 {
	return usage.AsApproximateFloat64() / total.AsApproximateFloat64()
}
