package mutation

import (
	"testing"

	"github.com/stretchr/testify/assert"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestWritesOnlyMutableFields(t *testing.T) {
	base := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Labels: map[string]string{"app": "a"}},
		Spec: corev1.PodSpec{
			Containers:     []corev1.Container{{Name: "a", Image: "a"}},
			InitContainers: []corev1.Container{{Name: "i", Image: "i"}},
		},
	}
	tests := []struct {
		name   string
		change func(*corev1.Pod)
		want   bool
	}{
		{"nothing", func(*corev1.Pod) {}, true},
		{"annotation", func(p *corev1.Pod) { p.Annotations = map[string]string{"k": "v"} }, true},
		{"container requests", func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")}
		}, true},
		{"init container requests", func(p *corev1.Pod) {
			p.Spec.InitContainers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")}
		}, true},
		{"affinity, tolerations, pod resources", func(p *corev1.Pod) {
			p.Spec.Affinity = &corev1.Affinity{}
			p.Spec.Tolerations = []corev1.Toleration{{Key: "k"}}
			p.Spec.Resources = &corev1.ResourceRequirements{}
		}, true},
		{"label", func(p *corev1.Pod) { p.Labels["x"] = "y" }, false},
		{"nodeSelector", func(p *corev1.Pod) { p.Spec.NodeSelector = map[string]string{"x": "y"} }, false},
		{"nodeName", func(p *corev1.Pod) { p.Spec.NodeName = "n" }, false},
		{"container image", func(p *corev1.Pod) { p.Spec.Containers[0].Image = "b" }, false},
		{"container added", func(p *corev1.Pod) { p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "b"}) }, false},
		{"status", func(p *corev1.Pod) { p.Status.Phase = corev1.PodRunning }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mutated := base.DeepCopy()
			tt.change(mutated)
			assert.Equal(t, tt.want, WritesOnlyMutableFields(base, mutated))
		})
	}
}
