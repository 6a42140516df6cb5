package webhook

import (
	"encoding/json"
	"gomodules.xyz/jsonpatch/v2"
	"k8s.io/apimachinery/pkg/api/resource"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestJSONPatchGenericDiff covers the objects without a field-level patch
// (DaemonSet templates): the patch reproduces the mutated object, and an
// unchanged object yields none. Pods are covered by
// TestPodPatchReproducesMutation.
func TestJSONPatchGenericDiff(t *testing.T) {
	ds := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "d"}}
	none, err := JSONPatch(ds, ds.DeepCopy())
	require.NoError(t, err)
	assert.Nil(t, none)

	mutated := ds.DeepCopy()
	mutated.Spec.Template.Spec.Tolerations = []corev1.Toleration{{Key: "k", Operator: corev1.TolerationOpExists}}
	ops, err := JSONPatch(ds, mutated)
	require.NoError(t, err)
	require.NotEmpty(t, ops)
	raw, err := encodePatch(ops)
	require.NoError(t, err)
	got := &appsv1.DaemonSet{}
	applyPatch(t, ds, raw, got)
	assert.Equal(t, mutated, got)
}

// TestEncodePatch: "add" and "replace" carry a value even when it is null,
// "remove" never does (RFC 6902), and every value encodes as encoding/json
// encodes it.
func TestEncodePatch(t *testing.T) {
	raw, err := encodePatch([]jsonpatch.Operation{
		jsonpatch.NewOperation("add", "/metadata/annotations/a~1b", "<v>&"),
		jsonpatch.NewOperation("replace", "/spec/x", nil),
		jsonpatch.NewOperation("remove", "/spec/affinity", nil),
	})
	require.NoError(t, err)
	assert.JSONEq(t, `[{"op":"add","path":"/metadata/annotations/a~1b","value":"<v>&"},`+
		`{"op":"replace","path":"/spec/x","value":null},{"op":"remove","path":"/spec/affinity"}]`, string(raw))

	seconds := int64(30)
	for name, value := range map[string]any{
		"plain string":        "general",
		"escapes":             "q\"\\ <&> \n\t\u2028 é 😀 \xff",
		"annotations":         map[string]string{"b": "2", "a": "1", "x/\"y\"": "\x00"},
		"nil annotations":     map[string]string(nil),
		"resources":           corev1.ResourceRequirements{Limits: corev1.ResourceList{"memory": resource.MustParse("1.5Gi"), "cpu": resource.MustParse("2"), "nvidia.com/gpu": resource.MustParse("1")}, Requests: corev1.ResourceList{"cpu": resource.MustParse("500m")}},
		"requests only":       corev1.ResourceRequirements{Requests: corev1.ResourceList{"cpu": resource.MustParse("1e3"), "weird\"name": resource.MustParse("1")}},
		"empty resources":     corev1.ResourceRequirements{},
		"resources w/ claims": corev1.ResourceRequirements{Claims: []corev1.ResourceClaim{{Name: "gpu"}}, Limits: corev1.ResourceList{"cpu": resource.MustParse("1")}},
		"tolerations":         []corev1.Toleration{{Key: "k", Operator: corev1.TolerationOpExists, TolerationSeconds: &seconds}},
		"affinity":            &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{}},
	} {
		ops := []jsonpatch.Operation{jsonpatch.NewOperation("add", "/p/"+name, value)}
		got, err := encodePatch(ops)
		require.NoError(t, err, name)
		want, err := json.Marshal(ops)
		require.NoError(t, err, name)
		assert.JSONEq(t, string(want), string(got), name)
		assert.True(t, json.Valid(got), name)
	}
}
