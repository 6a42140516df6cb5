package webhook

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/harbormaster-dev/harbormaster/pkg/mutation"
)

// TestPodPatchReproducesMutation applies the fast patch to the original pod
// and expects exactly the mutated pod, for every field the rules write.
func TestPodPatchReproducesMutation(t *testing.T) {
	q := resource.MustParse
	base := func() *corev1.Pod {
		return &corev1.Pod{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
			ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", Labels: map[string]string{"app": "a"}},
			Spec: corev1.PodSpec{
				InitContainers: []corev1.Container{{Name: "init", Image: "i", Resources: corev1.ResourceRequirements{
					Limits: corev1.ResourceList{corev1.ResourceCPU: q("1")}, Requests: corev1.ResourceList{corev1.ResourceCPU: q("1")}}}},
				Containers: []corev1.Container{
					{Name: "a", Image: "a", Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceCPU: q("2")}, Requests: corev1.ResourceList{corev1.ResourceCPU: q("2")}}},
					{Name: "b", Image: "b"},
				},
			},
		}
	}
	tests := []struct {
		name   string
		setup  func(orig *corev1.Pod)
		mutate func(p *corev1.Pod)
		fast   bool
	}{
		{"unchanged", nil, func(*corev1.Pod) {}, true},
		{"annotation added to none", nil, func(p *corev1.Pod) {
			p.Annotations = map[string]string{"harbormaster.io/overcommit": `{"ratios":{"cpu":2,"memory":1}}`}
		}, true},
		{"annotation added beside others, slash and tilde in keys", func(o *corev1.Pod) {
			o.Annotations = map[string]string{"keep/me": "1", "drop~me": "x"}
		}, func(p *corev1.Pod) {
			p.Annotations = map[string]string{"keep/me": "1", "harbormaster.io/overcommit": "{}"}
		}, true},
		{"requests lowered in containers and init containers", nil, func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU] = q("500m")
			p.Spec.InitContainers[0].Resources.Requests[corev1.ResourceCPU] = q("250m")
		}, true},
		{"pod-level resources, affinity and tolerations added", nil, func(p *corev1.Pod) {
			p.Spec.Resources = &corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: q("1")}}
			p.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
				NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "g", Operator: corev1.NodeSelectorOpIn, Values: []string{"x"}}}}}}}}
			p.Spec.Tolerations = []corev1.Toleration{{Key: "harbormaster.io/dedicated", Operator: corev1.TolerationOpEqual, Value: "p", Effect: corev1.TaintEffectNoSchedule}}
		}, true},
		{"existing tolerations extended", func(o *corev1.Pod) {
			o.Spec.Tolerations = []corev1.Toleration{{Key: "k", Operator: corev1.TolerationOpExists}}
		}, func(p *corev1.Pod) {
			p.Spec.Tolerations = append(p.Spec.Tolerations, corev1.Toleration{Key: "harbormaster.io/dedicated", Operator: corev1.TolerationOpEqual, Value: "p"})
		}, true},
		{"a container added: generic diff", nil, func(p *corev1.Pod) {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "c", Image: "c"})
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			orig := base()
			if tt.setup != nil {
				tt.setup(orig)
			}
			mutated := orig.DeepCopy()
			tt.mutate(mutated)

			_, fast := podPatch(mutation.WritableFieldsOf(orig), mutated)
			assert.Equal(t, tt.fast, fast, "fast path taken")

			resp, err := patchResponse(orig, mutated)
			require.NoError(t, err)
			require.True(t, resp.Allowed)
			got := &corev1.Pod{}
			applyPatch(t, orig, resp.Patch, got)
			assert.Equal(t, mutated, got)
			ops, err := JSONPatch(orig, mutated)
			require.NoError(t, err)
			if len(ops) == 0 {
				assert.Empty(t, resp.Patch)
				return
			}
			want, err := json.Marshal(ops)
			require.NoError(t, err)
			assert.JSONEq(t, string(want), string(resp.Patch), "encodePatch agrees with jsonpatch's own encoding")
		})
	}
}
