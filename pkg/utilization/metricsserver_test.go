package utilization

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"
)

func nodeWith(name, cpuAlloc, memAlloc, cpuCap, memCap string) *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Status: corev1.NodeStatus{
			Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpuAlloc), corev1.ResourceMemory: resource.MustParse(memAlloc)},
			Capacity:    corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpuCap), corev1.ResourceMemory: resource.MustParse(memCap)},
		},
	}
}

func nodeMetrics(name, cpu, mem string, at time.Time) metricsv1beta1.NodeMetrics {
	return metricsv1beta1.NodeMetrics{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Timestamp:  metav1.NewTime(at),
		Window:     metav1.Duration{Duration: 15 * time.Second},
		Usage:      corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(mem)},
	}
}

func TestNodeMetricsSource(t *testing.T) {
	nodes := map[string]*corev1.Node{
		"n1":    nodeWith("n1", "4", "8Gi", "4", "8Gi"),
		"tight": nodeWith("tight", "3500m", "7Gi", "4", "8Gi"),
		"zero":  nodeWith("zero", "0", "0", "0", "0"),
	}
	getNode := func(name string) (*corev1.Node, bool) { n, ok := nodes[name]; return n, ok }
	items := []metricsv1beta1.NodeMetrics{
		nodeMetrics("n1", "1", "2Gi", t0),
		// Usage above allocatable but within capacity: a full node, not garbage.
		nodeMetrics("tight", "3800m", "9Gi", t0),
		nodeMetrics("zero", "1", "1Gi", t0),
		nodeMetrics("unknown", "1", "1Gi", t0),
	}
	src := NewNodeMetricsSource(func(context.Context) ([]metricsv1beta1.NodeMetrics, error) { return items, nil },
		getNode, []Resource{CPU, Memory})

	batch, err := src.Fetch(t.Context())
	require.NoError(t, err)
	got := map[string]float64{}
	for _, s := range batch.Samples {
		got[string(s.Resource)+"/"+s.Node] = s.Value
		assert.Equal(t, MetricsServerSourceName, s.Source)
		assert.Equal(t, t0, s.Time)
	}
	assert.InDeltaMapValues(t, map[string]float64{
		"cpu/n1": 0.25, "memory/n1": 0.25,
		"cpu/tight": 1,
		// 9Gi used of 8Gi capacity is implausible: kept above 1 so the
		// store drops and counts it.
		"memory/tight": 9.0 / 7.0,
	}, got, 1e-9)
	assert.Equal(t, map[DropReason]int{DropNoAllocatable: 4}, batch.Dropped)

	store := NewStore(time.Minute, nil)
	assert.Equal(t, map[DropReason]int{DropNoAllocatable: 4, DropOver100Percent: 1}, store.Ingest(batch))
}

func TestNodeMetricsSourceFailures(t *testing.T) {
	getNode := func(string) (*corev1.Node, bool) { return nil, false }
	failing := NewNodeMetricsSource(func(context.Context) ([]metricsv1beta1.NodeMetrics, error) {
		return nil, errors.New(`the server could not find the requested resource (get nodes.metrics.k8s.io)`)
	}, getNode, []Resource{CPU})
	_, err := failing.Fetch(t.Context())
	assert.ErrorContains(t, err, "listing NodeMetrics")

	empty := NewNodeMetricsSource(func(context.Context) ([]metricsv1beta1.NodeMetrics, error) { return nil, nil }, getNode, []Resource{CPU})
	_, err = empty.Fetch(t.Context())
	assert.ErrorContains(t, err, "no NodeMetrics")
}
