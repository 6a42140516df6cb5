package explain

import (
	"bytes"
	"encoding/json"
	"testing"

	jsonpatchapply "github.com/evanphx/json-patch/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/harbormaster-dev/harbormaster/pkg/config"
	"github.com/harbormaster-dev/harbormaster/pkg/mutation"
	"github.com/harbormaster-dev/harbormaster/pkg/policy"
	"github.com/harbormaster-dev/harbormaster/pkg/policy/policytest"
	"github.com/harbormaster-dev/harbormaster/pkg/webhook"
	"github.com/harbormaster-dev/harbormaster/policies"
)

const testConfig = `apiVersion: config.harbormaster.io/v1alpha1
kind: HarbormasterConfig
overcommit:
  default: {cpu: 4, memory: 2}
hostGroups:
  general: {nodeSelector: {matchLabels: {harbormaster.io/host-group: general}}}
  batch: {nodeSelector: {matchLabels: {harbormaster.io/host-group: batch}}}
  restricted: {nodeSelector: {matchLabels: {harbormaster.io/host-group: restricted}}}
tenants:
  team-a: {hostGroups: [general, batch], defaultHostGroup: general}
  team-b: {hostGroups: [restricted], defaultHostGroup: restricted}
dedicatedPools:
  spark-a: {tenant: team-a, app: spark}
  secure-b: {tenant: team-b}
privileged: {users: [alice]}
`

func parseConfig(t *testing.T, extra string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(testConfig + extra))
	require.NoError(t, err)
	return cfg
}

func loadBundle(t *testing.T) *policy.Bundle {
	t.Helper()
	b, err := policy.Load(t.Context(), policies.FS, policy.LoadOptions{})
	require.NoError(t, err)
	return b
}

// tenantNamespace is a namespace of tenant team-a.
func tenantNamespace() policy.Namespace {
	return policy.Namespace{Name: "team-a-web", Labels: map[string]string{config.LabelTenant: "team-a"}}
}

// limitOnlyPod is a pod as users write it for overcommit: limits only.
func limitOnlyPod(name string, labels map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "app", Image: "registry.k8s.io/pause:3.10",
			Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{
				corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("1Gi"),
			}},
		}}},
	}
}

func withToleration(p *corev1.Pod, tol corev1.Toleration) *corev1.Pod {
	p.Spec.Tolerations = append(p.Spec.Tolerations, tol)
	return p
}

func violationIDs(d Decision) []string {
	var ids []string
	for _, v := range d.Violations {
		ids = append(ids, v.ID)
	}
	return ids
}

func TestExplain(t *testing.T) {
	tenantNS := tenantNamespace()
	bundle := loadBundle(t)
	cfg := parseConfig(t, "")
	unprivileged := authenticationv1.UserInfo{Username: "bob", Groups: []string{"system:authenticated"}}

	tests := []struct {
		name      string
		object    runtime.Object
		namespace policy.Namespace
		user      authenticationv1.UserInfo
		operation admissionv1.Operation
		config    *config.Config
		check     func(t *testing.T, r Report)
	}{
		{
			name: "tenant pod is confined, overcommitted and admitted", object: limitOnlyPod("web", nil), namespace: tenantNS, user: unprivileged,
			check: func(t *testing.T, r Report) {
				assert.True(t, r.Admitted)
				assert.Equal(t, "team-a", r.Tenant)
				assert.Equal(t, webhook.PathMutatePods, r.Mutation.Endpoint)
				assert.Equal(t, []string{mutation.RuleOvercommit, mutation.RuleHostGroup, mutation.RuleDedicated}, r.Mutation.Applied)
				require.Len(t, r.Mutation.Resources, 1)
				c := r.Mutation.Resources[0]
				assert.True(t, c.Changed)
				// Defaulting made request = limit; overcommit divides by 4.
				assert.Equal(t, "2", ptrQ(c.RequestsBefore, corev1.ResourceCPU))
				assert.Equal(t, "500m", ptrQ(c.RequestsAfter, corev1.ResourceCPU))
				assert.Equal(t, "512Mi", ptrQ(c.RequestsAfter, corev1.ResourceMemory))
				require.NotNil(t, r.Mutation.Overcommit)
				assert.Equal(t, 4.0, r.Mutation.Overcommit.CPU)
				pl := r.Mutation.Placement
				require.NotNil(t, pl)
				assert.Equal(t, []string{"general"}, pl.HostGroups)
				assert.Equal(t, []string{"secure-b", "spark-a"}, pl.ExcludedPools)
				assert.Empty(t, pl.RequiredBefore)
				assert.Len(t, pl.RequiredAfter, 1)
				assert.NotEmpty(t, r.Mutation.Patch)
				assert.Equal(t, policy.ResultAllow, r.Decision.Result)
				assert.Empty(t, r.Decision.Violations)
				assert.Equal(t, bundle.Revision(), r.Decision.BundleRevision)
			},
		},
		{
			name: "pool owner gets the pool and its toleration", object: limitOnlyPod("spark", map[string]string{"app.kubernetes.io/name": "spark"}),
			namespace: tenantNS, user: unprivileged,
			check: func(t *testing.T, r Report) {
				assert.True(t, r.Admitted)
				pl := r.Mutation.Placement
				require.NotNil(t, pl)
				assert.Equal(t, []string{"spark-a"}, pl.DedicatedPools)
				assert.Equal(t, []string{"spark-a"}, pl.OwnedPools)
				assert.Equal(t, []string{"secure-b"}, pl.ExcludedPools)
				assert.Empty(t, pl.HostGroups, "the pool replaces the host groups")
				require.Len(t, pl.TolerationsAdded, 1)
				assert.Equal(t, "spark-a", pl.TolerationsAdded[0].Value)
			},
		},
		{
			name:      "wildcard toleration is denied after mutation",
			object:    withToleration(limitOnlyPod("greedy", nil), corev1.Toleration{Operator: corev1.TolerationOpExists}),
			namespace: tenantNS, user: unprivileged,
			check: func(t *testing.T, r Report) {
				assert.False(t, r.Admitted)
				assert.Equal(t, policy.ResultDeny, r.Decision.Result)
				assert.Equal(t, []string{"HM-DH-003"}, violationIDs(r.Decision))
				assert.Equal(t, "spec.tolerations[0]", r.Decision.Violations[0].Field)
				assert.Equal(t, "critical", r.Decision.Violations[0].Severity)
			},
		},
		{
			name: "exempt label by an unprivileged user is denied", object: limitOnlyPod("sneaky", map[string]string{config.LabelExempt: config.ExemptValue}),
			namespace: tenantNS, user: unprivileged,
			check: func(t *testing.T, r Report) {
				assert.Equal(t, mutation.SkipExemptLabel, r.Mutation.Skipped)
				assert.Empty(t, r.Mutation.Patch)
				assert.False(t, r.Admitted)
				assert.Contains(t, violationIDs(r.Decision), "HM-OO-001")
			},
		},
		{
			name: "exempt label by a privileged user is admitted unmutated", object: limitOnlyPod("opted-out", map[string]string{config.LabelExempt: config.ExemptValue}),
			namespace: tenantNS, user: authenticationv1.UserInfo{Username: "alice"},
			check: func(t *testing.T, r Report) {
				assert.Equal(t, mutation.SkipExemptLabel, r.Mutation.Skipped)
				assert.Nil(t, r.Mutation.Placement)
				assert.True(t, r.Admitted)
				assert.Empty(t, r.Decision.Violations)
			},
		},
		{
			name: "namespace without tenant is denied", object: limitOnlyPod("orphan", nil),
			namespace: policy.Namespace{Name: "scratch"}, user: unprivileged,
			check: func(t *testing.T, r Report) {
				assert.False(t, r.Admitted)
				assert.Equal(t, []string{"HM-NS-001"}, violationIDs(r.Decision))
				assert.Empty(t, r.Mutation.Placement.HostGroups)
			},
		},
		{
			name: "enforcement override to warn admits", object: limitOnlyPod("orphan", nil),
			namespace: policy.Namespace{Name: "scratch"}, user: unprivileged,
			config: parseConfig(t, "policy:\n  enforcement: {HM-NS-001: warn}\n"),
			check: func(t *testing.T, r Report) {
				assert.True(t, r.Admitted)
				assert.Equal(t, policy.ResultWarn, r.Decision.Result)
			},
		},
		{
			name: "system namespace is neither mutated nor judged", object: limitOnlyPod("dns", nil),
			namespace: policy.Namespace{Name: "kube-system"}, user: unprivileged,
			check: func(t *testing.T, r Report) {
				assert.Equal(t, mutation.SkipExemptNamespace, r.Mutation.Skipped)
				assert.True(t, r.Decision.ExemptNamespace)
				assert.True(t, r.Admitted)
			},
		},
		{
			name: "pod namespace from metadata", object: func() runtime.Object {
				p := limitOnlyPod("web", nil)
				p.Namespace = "from-meta"
				return p
			}(),
			user: unprivileged,
			check: func(t *testing.T, r Report) {
				assert.Equal(t, "from-meta", r.Object.Namespace)
				assert.Equal(t, "from-meta", r.Namespace.Name)
			},
		},
		{
			name: "pod UPDATE is not mutated and judged against no old object", object: func() runtime.Object {
				p := limitOnlyPod("web", nil)
				p.Spec.NodeName = "general-0"
				return p
			}(),
			namespace: tenantNS, user: unprivileged, operation: admissionv1.Update,
			check: func(t *testing.T, r Report) {
				assert.Empty(t, r.Mutation.Endpoint)
				assert.NotEmpty(t, r.Mutation.Note)
				assert.Equal(t, []string{"HM-HG-001"}, violationIDs(r.Decision), "nodeName reads as new")
			},
		},
		{
			name: "deployment is judged, not mutated", object: deployment(withToleration(limitOnlyPod("", nil), corev1.Toleration{Operator: corev1.TolerationOpExists})),
			namespace: tenantNS, user: unprivileged,
			check: func(t *testing.T, r Report) {
				assert.Equal(t, "Deployment", r.Object.Kind)
				assert.Equal(t, "apps/v1", r.Object.APIVersion)
				assert.Empty(t, r.Mutation.Endpoint)
				assert.Contains(t, r.Mutation.Note, "Deployment")
				assert.False(t, r.Admitted)
				assert.Equal(t, []string{"HM-DH-003"}, violationIDs(r.Decision))
				assert.Equal(t, "spec.template.spec.tolerations[0]", r.Decision.Violations[0].Field)
			},
		},
		{
			name: "daemonset template is confined", object: daemonSet(limitOnlyPod("", map[string]string{"app": "agent"})),
			namespace: tenantNS, user: unprivileged,
			check: func(t *testing.T, r Report) {
				assert.Equal(t, webhook.PathMutateDaemonSets, r.Mutation.Endpoint)
				assert.Equal(t, []string{mutation.RuleHostGroup, mutation.RuleDedicated}, r.Mutation.Applied)
				assert.Empty(t, r.Mutation.Resources, "templates are not overcommitted")
				require.NotNil(t, r.Mutation.Placement)
				assert.Equal(t, []string{"general"}, r.Mutation.Placement.HostGroups)
				assert.True(t, r.Admitted)
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := cfg
			if tc.config != nil {
				c = tc.config
			}
			before, err := json.Marshal(tc.object)
			require.NoError(t, err)
			r, err := Explain(t.Context(), Input{
				Object: tc.object, Namespace: tc.namespace, Config: c, Bundle: bundle, User: tc.user, Operation: tc.operation,
			})
			require.NoError(t, err)
			after, err := json.Marshal(tc.object)
			require.NoError(t, err)
			assert.JSONEq(t, string(before), string(after), "the input object is not modified")
			tc.check(t, r)
			var text bytes.Buffer
			require.NoError(t, RenderText(&text, r))
			assert.Contains(t, text.String(), r.Object.String())
		})
	}
}

// TestExplainPatchIsTheWebhookPatch applies the reported patch to the
// defaulted object and gets the mutated pod: the patch is complete.
func TestExplainPatchIsTheWebhookPatch(t *testing.T) {
	tenantNS := tenantNamespace()
	cfg := parseConfig(t, "")
	pod := limitOnlyPod("web", map[string]string{"app": "web"})
	r, err := Explain(t.Context(), Input{Object: pod, Namespace: tenantNS, Config: cfg, Bundle: loadBundle(t)})
	require.NoError(t, err)

	defaulted, _, err := prepare(pod, tenantNS.Name)
	require.NoError(t, err)
	want := mutation.MutatePod(cfg, defaulted.(*corev1.Pod), mutation.Input{
		Namespace: tenantNS.Name, NamespaceLabels: tenantNS.Labels, OwnNamespace: DefaultOwnNamespace,
	}).Pod
	beforeJSON, err := json.Marshal(defaulted)
	require.NoError(t, err)
	patchJSON, err := json.Marshal(r.Mutation.Patch)
	require.NoError(t, err)
	patch, err := jsonpatchapply.DecodePatch(patchJSON)
	require.NoError(t, err)
	patched, err := patch.Apply(beforeJSON)
	require.NoError(t, err)
	wantJSON, err := json.Marshal(want)
	require.NoError(t, err)
	assert.JSONEq(t, string(wantJSON), string(patched))
	assert.Contains(t, r.Mutation.Applied, mutation.RuleAntiAffinity)
}

func TestExplainEvaluationFailure(t *testing.T) {
	tenantNS := tenantNamespace()
	bundle := policytest.RuntimeErrorBundle(t)
	for _, tc := range []struct {
		namespace policy.Namespace
		admitted  bool
	}{
		{tenantNS, false},
		{policy.Namespace{Name: "scratch"}, true},
	} {
		r, err := Explain(t.Context(), Input{Object: limitOnlyPod("web", nil), Namespace: tc.namespace, Bundle: bundle})
		require.NoError(t, err)
		assert.NotEmpty(t, r.Decision.Error)
		assert.Equal(t, tc.admitted, r.Admitted, tc.namespace.Name)
	}
}

func TestExplainRejectsBadInput(t *testing.T) {
	tenantNS := tenantNamespace()
	bundle := loadBundle(t)
	pod := limitOnlyPod("web", nil)
	pod.Namespace = "team-b-web"
	_, err := Explain(t.Context(), Input{Object: pod, Namespace: tenantNS, Bundle: bundle})
	require.ErrorContains(t, err, "metadata.namespace")

	_, err = Explain(t.Context(), Input{Object: limitOnlyPod("web", nil), Bundle: bundle, Operation: admissionv1.Delete})
	require.ErrorContains(t, err, "operation")

	_, err = Explain(t.Context(), Input{Object: &corev1.ConfigMap{}, Bundle: bundle})
	require.ErrorContains(t, err, "not reviewed")
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name    string
		data    string
		wantErr string
		kind    string
	}{
		{name: "pod", data: "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec: {containers: [{name: app, image: nginx}]}\n", kind: "Pod"},
		{name: "leading separator and comment", data: "# a pod\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: web}\n", kind: "Pod"},
		{name: "deployment json", data: `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"}}`, kind: "Deployment"},
		{name: "unknown field", data: "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec: {containers: [{name: app, imagee: nginx}]}\n",
			wantErr: `pod.yaml: strict decoding error: unknown field "spec.containers[0].imagee"`},
		{name: "two objects", data: "apiVersion: v1\nkind: Pod\n---\napiVersion: v1\nkind: Pod\n", wantErr: "pod.yaml: holds 2 objects"},
		{name: "empty", data: "# nothing\n", wantErr: "pod.yaml: no object"},
		{name: "not reviewed", data: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n", wantErr: "pod.yaml: kind ConfigMap is not reviewed"},
		{name: "no kind", data: "apiVersion: v1\nmetadata: {name: x}\n", wantErr: "pod.yaml: "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			obj, err := DecodeObject("pod.yaml", []byte(tc.data))
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			kind, err := reviewedKind(obj)
			require.NoError(t, err)
			assert.Equal(t, tc.kind, kind.Kind)
		})
	}
}

func TestDecodeNamespaceAndLimitRanges(t *testing.T) {
	tenantNS := tenantNamespace()
	ns, err := DecodeNamespace("ns.yaml", []byte("apiVersion: v1\nkind: Namespace\nmetadata: {name: team-a-web, labels: {harbormaster.io/tenant: team-a}}\n"))
	require.NoError(t, err)
	assert.Equal(t, tenantNS, ns)
	_, err = DecodeNamespace("ns.yaml", []byte("apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n"))
	require.ErrorContains(t, err, "ns.yaml: kind: Pod, want Namespace")
	_, err = DecodeNamespace("ns.yaml", []byte("apiVersion: v1\nkind: Namespace\nmetadata: {labels: {a: b}}\n"))
	require.ErrorContains(t, err, "ns.yaml: metadata.name: required")

	lrs, err := DecodeLimitRanges("lr.yaml", []byte("apiVersion: v1\nkind: LimitRange\nmetadata: {name: a}\n---\napiVersion: v1\nkind: LimitRange\nmetadata: {name: b}\n"))
	require.NoError(t, err)
	assert.Len(t, lrs, 2)
	_, err = DecodeLimitRanges("lr.yaml", []byte("apiVersion: v1\nkind: LimitRange\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: b}\n"))
	require.ErrorContains(t, err, "lr.yaml: document 2: kind: Namespace")
}

func TestParseConfig(t *testing.T) {
	cfg, rev, err := ParseConfig("config.yaml", []byte(testConfig))
	require.NoError(t, err)
	assert.Contains(t, cfg.Tenants, "team-a")
	assert.Len(t, rev, 12)

	cm := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: harbormaster-config}\ndata:\n  config.yaml: |\n    apiVersion: config.harbormaster.io/v1alpha1\n    kind: HarbormasterConfig\n    tenants: {team-a: {}}\n"
	cfg, _, err = ParseConfig("cm.yaml", []byte(cm))
	require.NoError(t, err)
	assert.Contains(t, cfg.Tenants, "team-a")

	_, _, err = ParseConfig("config.yaml", []byte("apiVersion: config.harbormaster.io/v1alpha1\nkind: HarbormasterConfig\noverCommit: {}\n"))
	require.ErrorContains(t, err, "config.yaml: ")
	require.ErrorContains(t, err, "overCommit")

	_, _, err = ParseConfig("cm.yaml", []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata:\n  config.yaml: |\n    apiVersion: config.harbormaster.io/v1alpha1\n    kind: HarbormasterConfig\n    overcommit: {default: {cpu: 0.5}}\n"))
	require.ErrorContains(t, err, "cm.yaml: data[config.yaml]: ")
	require.ErrorContains(t, err, "overcommit.default.cpu")

	_, _, err = ParseConfig("cm.yaml", []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n"))
	require.ErrorContains(t, err, "cm.yaml: data[config.yaml]: required")
}

func ptrQ(list corev1.ResourceList, name corev1.ResourceName) string {
	q, ok := list[name]
	if !ok {
		return ""
	}
	return q.String()
}

func deployment(p *corev1.Pod) *appsv1.Deployment {
	labels := map[string]string{"app": "web"}
	p.Labels = labels
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: p.ObjectMeta, Spec: p.Spec},
		},
	}
}

func daemonSet(p *corev1.Pod) *appsv1.DaemonSet {
	return &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "agent"},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: p.Labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: p.ObjectMeta, Spec: p.Spec},
		},
	}
}
