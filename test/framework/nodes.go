package framework

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
)

// ResourceGPU is the extended resource NVIDIA's device plugin advertises.
const ResourceGPU corev1.ResourceName = "nvidia.com/gpu"

// NodeSpec describes a simulated node: a Node object with capacity, labels,
// taints and a Ready condition, and no kubelet behind it.
type NodeSpec struct {
	Name   string
	CPU    string // e.g. "16"
	Memory string // e.g. "64Gi"
	GPUs   int64
	Pods   int64 // pod capacity; 0 means 110
	Labels map[string]string
	Taints []corev1.Taint
}

// Node builds the Node object for a spec.
func (s NodeSpec) Node() *corev1.Node {
	pods := s.Pods
	if pods == 0 {
		pods = 110
	}
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse(s.CPU),
		corev1.ResourceMemory: resource.MustParse(s.Memory),
		corev1.ResourcePods:   *resource.NewQuantity(pods, resource.DecimalSI),
	}
	if s.GPUs > 0 {
		capacity[ResourceGPU] = *resource.NewQuantity(s.GPUs, resource.DecimalSI)
	}
	labels := map[string]string{
		corev1.LabelHostname:   s.Name,
		corev1.LabelOSStable:   "linux",
		corev1.LabelArchStable: "amd64",
	}
	for k, v := range s.Labels {
		labels[k] = v
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: s.Name, Labels: labels},
		Spec:       corev1.NodeSpec{Taints: s.Taints},
		Status: corev1.NodeStatus{
			Capacity:    capacity,
			Allocatable: capacity.DeepCopy(),
			Phase:       corev1.NodeRunning,
			Conditions: []corev1.NodeCondition{{
				Type: corev1.NodeReady, Status: corev1.ConditionTrue,
				Reason: "SimulatedNode", Message: "simulated by the Harbormaster test harness",
				LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now(),
			}},
		},
	}
}

// CreateNodes creates the nodes and sets their status (status is a
// subresource: the create call drops it).
func CreateNodes(ctx context.Context, c kubernetes.Interface, specs ...NodeSpec) error {
	for _, s := range specs {
		want := s.Node()
		created, err := c.CoreV1().Nodes().Create(ctx, want, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("creating node %s: %w", s.Name, err)
		}
		// Controllers of the controller-manager (ttl, ...) write the node
		// too: both updates retry on conflict with a fresh copy.
		err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
			created.Status = want.Status
			_, err := c.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{})
			if err != nil {
				created, _ = c.CoreV1().Nodes().Get(ctx, s.Name, metav1.GetOptions{})
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("setting status of node %s: %w", s.Name, err)
		}
		// The TaintNodesByCondition admission plugin adds a not-ready taint
		// at creation; the node lifecycle controller would lift it once the
		// kubelet reports Ready, but simulated nodes have no kubelet.
		err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
			current, err := c.CoreV1().Nodes().Get(ctx, s.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			current.Spec.Taints = want.Spec.Taints
			_, err = c.CoreV1().Nodes().Update(ctx, current, metav1.UpdateOptions{})
			return err
		})
		if err != nil {
			return fmt.Errorf("setting taints of node %s: %w", s.Name, err)
		}
	}
	return nil
}
