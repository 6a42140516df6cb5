package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/harbormaster-dev/harbormaster/pkg/schedulerapp"
	"github.com/harbormaster-dev/harbormaster/test/framework"
)

// TestControllerManagerIsReal proves the harness runs a real control plane:
// a Deployment gets its ReplicaSet and Pods from kube-controller-manager, and
// once the controller-manager is stopped, scaling the Deployment creates no
// more Pods (so the first half cannot pass without it).
func TestControllerManagerIsReal(t *testing.T) {
	cp := framework.Start(t, framework.Options{ControllerManager: true})
	ctx := t.Context()
	ns := createNamespace(t, cp.Client, "deploy", nil)

	dep := testDeployment(ns, "web", 2, "")
	_, err := cp.Client.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{})
	require.NoError(t, err)
	waitForPodCount(t, cp.Client, ns, "app=web", 2, 60*time.Second)

	rsList, err := cp.Client.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	require.NoError(t, err)
	require.Len(t, rsList.Items, 1, "the deployment controller creates exactly one ReplicaSet")
	require.Equal(t, "web", rsList.Items[0].OwnerReferences[0].Name)

	require.NoError(t, cp.StopControllerManager())
	scaled, err := cp.Client.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
	require.NoError(t, err)
	scaled.Spec.Replicas = ptr.To[int32](4)
	_, err = cp.Client.AppsV1().Deployments(ns).Update(ctx, scaled, metav1.UpdateOptions{})
	require.NoError(t, err)
	time.Sleep(5 * time.Second)
	pods, err := cp.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	require.NoError(t, err)
	require.Len(t, pods.Items, 2, "without kube-controller-manager nothing acts on the scaled Deployment")

	require.NoError(t, cp.StartControllerManager(ctx, nil))
	waitForPodCount(t, cp.Client, ns, "app=web", 4, 60*time.Second)
}

// TestSchedulerBindsToSimulatedNodes runs the scheduler built from
// cmd/scheduler's registry in-process and checks it binds pods to the only
// node that fits, proving nodes, scheduler and harness work together.
func TestSchedulerBindsToSimulatedNodes(t *testing.T) {
	cp := framework.Start(t, framework.Options{})
	ctx := t.Context()
	require.NoError(t, framework.CreateNodes(ctx, cp.Client,
		framework.NodeSpec{Name: "small", CPU: "1", Memory: "2Gi"},
		framework.NodeSpec{Name: "big", CPU: "32", Memory: "128Gi", GPUs: 8, Labels: map[string]string{"pool": "gpu"}},
	))
	framework.RunScheduler(t, cp.SchedulerConfig(schedulerapp.SchedulerName, "", false))
	ns := createNamespace(t, cp.Client, "sched", nil)

	for i := range 3 {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p%d", i), Namespace: ns},
			Spec: corev1.PodSpec{
				SchedulerName: schedulerapp.SchedulerName,
				Containers: []corev1.Container{{
					Name: "c", Image: "registry.k8s.io/pause:3.10",
					Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
						corev1.ResourceCPU: mustQuantity("2"), framework.ResourceGPU: mustQuantity("1"),
					}, Limits: corev1.ResourceList{framework.ResourceGPU: mustQuantity("1")}},
				}},
			},
		}
		_, err := cp.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	for i := range 3 {
		node := waitForScheduled(t, cp.Client, ns, fmt.Sprintf("p%d", i), 30*time.Second)
		require.Equal(t, "big", node, "only the big node has 2 CPUs and a GPU free")
	}
}

func createNamespace(t *testing.T, c kubernetes.Interface, prefix string, labels map[string]string) string {
	t.Helper()
	ns, err := c.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-", Labels: labels},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	return ns.Name
}

func testDeployment(ns, name string, replicas int32, schedulerName string) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					SchedulerName: schedulerName,
					Containers:    []corev1.Container{{Name: "web", Image: "registry.k8s.io/pause:3.10"}},
				},
			},
		},
	}
}

func waitForPodCount(t *testing.T, c kubernetes.Interface, ns, selector string, want int, timeout time.Duration) []corev1.Pod {
	t.Helper()
	var pods []corev1.Pod
	err := wait.PollUntilContextTimeout(t.Context(), 250*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		list, err := c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return false, err
		}
		pods = list.Items
		return len(pods) == want, nil
	})
	require.NoError(t, err, "want %d pods matching %q in %s, have %d", want, selector, ns, len(pods))
	return pods
}

func waitForScheduled(t *testing.T, c kubernetes.Interface, ns, name string, timeout time.Duration) string {
	t.Helper()
	var node, why string
	err := wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		p, err := c.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		node = p.Spec.NodeName
		why = fmt.Sprint(p.Status.Conditions)
		return node != "", nil
	})
	require.NoError(t, err, "pod %s/%s was not scheduled: %s", ns, name, why)
	return node
}

func mustQuantity(s string) resource.Quantity { return resource.MustParse(s) }
