package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"

	jsonpatchapply "github.com/evanphx/json-patch/v5"
	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/harbormaster-dev/harbormaster/pkg/config"
	"github.com/harbormaster-dev/harbormaster/pkg/configstore"
)

const testConfig = `apiVersion: config.harbormaster.io/v1alpha1
kind: HarbormasterConfig
overcommit:
  default: {cpu: 4, memory: 2}
hostGroups:
  general: {nodeSelector: {matchLabels: {harbormaster.io/host-group: general}}}
tenants:
  team-a: {hostGroups: [general], defaultHostGroup: general}
`

type fakeView struct {
	labels map[string]map[string]string
	err    error
}

func (f fakeView) NamespaceLabels(_ context.Context, name string) (map[string]string, error) {
	if f.err != nil {
		return nil, f.err
	}
	return f.labels[name], nil
}

func (f fakeView) LimitRanges(context.Context, string) ([]corev1.LimitRange, error) { return nil, nil }

type panickingView struct{ fakeView }

func (panickingView) NamespaceLabels(context.Context, string) (map[string]string, error) {
	panic("boom")
}

func newTestStore(t testing.TB) *configstore.Store {
	t.Helper()
	s := configstore.New(logr.Discard(), nil)
	require.NoError(t, s.Update([]byte(testConfig)))
	return s
}

func decoder(t testing.TB) admission.Decoder {
	t.Helper()
	scheme := runtime.NewScheme()
	require.NoError(t, clientgoscheme.AddToScheme(scheme))
	return admission.NewDecoder(scheme)
}

func limitPod(cpu string) *corev1.Pod {
	q := resource.MustParse(cpu)
	return &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "web"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "c", Image: "nginx",
			Resources: corev1.ResourceRequirements{
				Limits:   corev1.ResourceList{corev1.ResourceCPU: q},
				Requests: corev1.ResourceList{corev1.ResourceCPU: q},
			},
		}}},
	}
}

func request(t *testing.T, op admissionv1.Operation, kind, subResource string, obj, old any) admission.Request {
	t.Helper()
	raw, err := json.Marshal(obj)
	require.NoError(t, err)
	req := admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID: "1", Operation: op, Namespace: "web", Name: "p", SubResource: subResource,
		Kind: metav1.GroupVersionKind{Version: "v1", Kind: kind}, Object: runtime.RawExtension{Raw: raw},
	}}
	if old != nil {
		rawOld, err := json.Marshal(old)
		require.NoError(t, err)
		req.OldObject = runtime.RawExtension{Raw: rawOld}
	}
	return req
}

// applyPatch applies the patch bytes a handler answered, as the API server
// would.
func applyPatch(t *testing.T, original any, rawOps []byte, out any) {
	t.Helper()
	doc, err := json.Marshal(original)
	require.NoError(t, err)
	if len(rawOps) == 0 { // no patch: the object is stored as sent
		require.NoError(t, json.Unmarshal(doc, out))
		return
	}
	patch, err := jsonpatchapply.DecodePatch(rawOps)
	require.NoError(t, err)
	patched, err := patch.Apply(doc)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(patched, out))
}

func TestPodMutatorPatchesAndIsIdempotent(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := &PodMutator{Store: newTestStore(t), View: fakeView{}, OwnNamespace: "harbormaster-system",
		Metrics: NewMetrics(reg), Decoder: decoder(t), Log: logr.Discard()}
	pod := limitPod("2")

	resp := m.Handle(t.Context(), request(t, admissionv1.Create, "Pod", "", pod, nil))
	require.True(t, resp.Allowed)
	require.NotEmpty(t, resp.Patch)
	mutated := &corev1.Pod{}
	applyPatch(t, pod, resp.Patch, mutated)
	require.Equal(t, "500m", ptr.To(mutated.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU]).String())
	require.Equal(t, 1.0, testutil.ToFloat64(m.Metrics.Requests.WithLabelValues(WebhookPods, "patched")))
	require.Equal(t, 1.0, testutil.ToFloat64(m.Metrics.Rules.WithLabelValues(WebhookPods, "overcommit")))

	// Reinvocation on our own output: no patch at all.
	again := m.Handle(t.Context(), request(t, admissionv1.Create, "Pod", "", mutated, nil))
	require.True(t, again.Allowed)
	require.Empty(t, again.Patch)
	require.Equal(t, 1.0, testutil.ToFloat64(m.Metrics.Requests.WithLabelValues(WebhookPods, "unchanged")))
}

func TestPodMutatorFailsClosedWithoutNamespace(t *testing.T) {
	m := &PodMutator{Store: newTestStore(t), View: fakeView{err: errors.New("cache down")}, Decoder: decoder(t), Log: logr.Discard()}
	resp := m.Handle(t.Context(), request(t, admissionv1.Create, "Pod", "", limitPod("1"), nil))
	require.False(t, resp.Allowed, "a pod whose tenant cannot be known is not admitted unconfined")
	require.Equal(t, int32(http.StatusInternalServerError), resp.Result.Code)
	require.Contains(t, resp.Result.Message, `namespace "web"`)
}

func TestPodMutatorIgnoresOtherOperations(t *testing.T) {
	m := &PodMutator{Store: newTestStore(t), View: fakeView{}, Decoder: decoder(t), Log: logr.Discard()}
	resp := m.Handle(t.Context(), request(t, admissionv1.Update, "Pod", "", limitPod("1"), limitPod("1")))
	require.True(t, resp.Allowed)
	require.Empty(t, resp.Patch)
}

func TestPodMutatorResizeRecomputesRequest(t *testing.T) {
	m := &PodMutator{Store: newTestStore(t), View: fakeView{}, Decoder: decoder(t), Log: logr.Discard()}
	created := &corev1.Pod{}
	pod := limitPod("2")
	applyPatch(t, pod, m.Handle(t.Context(), request(t, admissionv1.Create, "Pod", "", pod, nil)).Patch, created)

	resized := created.DeepCopy()
	resized.Spec.Containers[0].Resources.Limits[corev1.ResourceCPU] = resource.MustParse("4")
	resp := m.Handle(t.Context(), request(t, admissionv1.Update, "Pod", "resize", resized, created))
	require.True(t, resp.Allowed)
	out := &corev1.Pod{}
	applyPatch(t, resized, resp.Patch, out)
	require.Equal(t, "1", ptr.To(out.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU]).String())
}

func TestPanicBecomesErrorResponse(t *testing.T) {
	wh := withRecover(&PodMutator{Store: newTestStore(t), View: panickingView{}, Decoder: decoder(t), Log: logr.Discard()})
	resp := wh.Handle(t.Context(), request(t, admissionv1.Create, "Pod", "", limitPod("1"), nil))
	require.False(t, resp.Allowed)
	require.Equal(t, int32(http.StatusInternalServerError), resp.Result.Code)
}

func TestDaemonSetMutatorConfinesTemplate(t *testing.T) {
	m := &DaemonSetMutator{Store: newTestStore(t), Decoder: decoder(t), Log: logr.Discard(),
		View: fakeView{labels: map[string]map[string]string{"web": {config.LabelTenant: "team-a"}}}}
	ds := &appsv1.DaemonSet{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "DaemonSet"},
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "web"},
		Spec:       appsv1.DaemonSetSpec{Template: corev1.PodTemplateSpec{Spec: limitPod("1").Spec}},
	}
	resp := m.Handle(t.Context(), request(t, admissionv1.Create, "DaemonSet", "", ds, nil))
	require.True(t, resp.Allowed)
	out := &appsv1.DaemonSet{}
	applyPatch(t, ds, resp.Patch, out)
	terms := out.Spec.Template.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
	require.Len(t, terms, 1)
	require.Contains(t, terms[0].MatchExpressions, corev1.NodeSelectorRequirement{
		Key: "harbormaster.io/host-group", Operator: corev1.NodeSelectorOpIn, Values: []string{"general"}})
	require.Equal(t, ds.Spec.Template.Spec.Containers[0].Resources, out.Spec.Template.Spec.Containers[0].Resources,
		"templates are not overcommitted: pods are, at their own admission")
}

func TestConfigValidatorNamesFields(t *testing.T) {
	v := &ConfigValidator{Key: types.NamespacedName{Namespace: "harbormaster-system", Name: "harbormaster-config"}, Decoder: decoder(t), Log: logr.Discard()}
	cm := &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Name: "harbormaster-config", Namespace: "harbormaster-system"},
		Data:       map[string]string{config.ConfigMapKey: "apiVersion: config.harbormaster.io/v1alpha1\nkind: HarbormasterConfig\novercommit:\n  default: {cpu: -1}\n"},
	}
	req := request(t, admissionv1.Update, "ConfigMap", "", cm, nil)
	req.Namespace, req.Name = "harbormaster-system", "harbormaster-config"
	resp := v.Handle(t.Context(), req)
	require.False(t, resp.Allowed)
	require.Contains(t, resp.Result.Message, "overcommit.default.cpu")

	other := req
	other.Name = "something-else"
	require.True(t, v.Handle(t.Context(), other).Allowed, "other ConfigMaps are not ours to judge")
}
