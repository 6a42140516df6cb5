package webhook

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestJSONPatchIsTheHandlersPatch keeps JSONPatch, which tools use to show
// the webhook's patch, in step with what the handlers answer.
func TestJSONPatchIsTheHandlersPatch(t *testing.T) {
	pod := func() *corev1.Pod {
		return &corev1.Pod{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
			ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "a", Image: "a", Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2")},
			}}}},
		}
	}
	podCases := map[string]func(*corev1.Pod){
		"unchanged": func(*corev1.Pod) {},
		"fast path": func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU] = resource.MustParse("500m")
		},
		"generic diff": func(p *corev1.Pod) { p.Spec.NodeSelector = map[string]string{"x": "y"} },
	}
	for name, mutate := range podCases {
		t.Run(name, func(t *testing.T) {
			orig := pod()
			mutated := orig.DeepCopy()
			mutate(mutated)
			got, err := JSONPatch(orig, mutated)
			require.NoError(t, err)
			resp, err := patchResponse(orig, mutated)
			require.NoError(t, err)
			assert.ElementsMatch(t, resp.Patches, got)
		})
	}

	ds := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "d"}}
	mutated := ds.DeepCopy()
	mutated.Spec.Template.Spec.Tolerations = []corev1.Toleration{{Key: "k", Operator: corev1.TolerationOpExists}}
	got, err := JSONPatch(ds, mutated)
	require.NoError(t, err)
	resp, err := patchResponse(ds, mutated)
	require.NoError(t, err)
	assert.ElementsMatch(t, resp.Patches, got)
	assert.NotEmpty(t, got)
}
