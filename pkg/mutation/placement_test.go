package mutation

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/harbormaster-dev/harbormaster/pkg/config"
)

func withGeneral(reqs ...corev1.NodeSelectorRequirement) []corev1.NodeSelectorRequirement {
	return append(reqs, generalReq())
}

func withBatch(reqs ...corev1.NodeSelectorRequirement) []corev1.NodeSelectorRequirement {
	return append(reqs, batchReqs()...)
}

func TestExemption(t *testing.T) {
	cfg := parseConfig(t, overcommitYAML, hostGroupsYAML, poolsYAML, "exemptNamespaces: [tools]\n")
	limited := withContainers(container("app", rl("cpu", "1"), rl("cpu", "1")))
	tests := []struct {
		name string
		pod  *corev1.Pod
		in   Input
		want string
	}{
		{"kube-system", newPod(limited), tenantInput("kube-system", "team-a"), SkipExemptNamespace},
		{"kube-public", newPod(limited), tenantInput("kube-public", ""), SkipExemptNamespace},
		{"kube-node-lease", newPod(limited), tenantInput("kube-node-lease", ""), SkipExemptNamespace},
		{"own namespace", newPod(limited), tenantInput("harbormaster", "team-a"), SkipExemptNamespace},
		{"configured", newPod(limited), tenantInput("tools", "team-a"), SkipExemptNamespace},
		{"namespace from the pod", newPod(limited, func(p *corev1.Pod) { p.Namespace = "kube-system" }), Input{}, SkipExemptNamespace},
		{"label", newPod(limited, withLabels(config.LabelExempt, "true")), tenantInput("apps", "team-a"), SkipExemptLabel},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := mutate(t, cfg, tt.pod, tt.in)
			assert.Equal(t, tt.want, res.Skipped)
			assert.Empty(t, res.Applied)
			assert.Equal(t, tt.pod, res.Pod)
			assert.NotSame(t, tt.pod, res.Pod, "even an exempt pod is returned as a copy")
		})
	}

	res := mutate(t, cfg, newPod(limited, withLabels(config.LabelExempt, "false")), tenantInput("apps", "team-a"))
	assert.Empty(t, res.Skipped, "only exempt=true exempts")
	assert.NotEmpty(t, res.Applied)
}

func TestHostGroupConfinement(t *testing.T) {
	cfg := parseConfig(t, hostGroupsYAML)
	zone := req("topology.kubernetes.io/zone", corev1.NodeSelectorOpIn, "a")
	ssd := req("disk", corev1.NodeSelectorOpIn, "ssd")
	nodeField := corev1.NodeSelectorTerm{MatchFields: []corev1.NodeSelectorRequirement{req(metav1.ObjectNameField, corev1.NodeSelectorOpIn, "node-1")}}
	nodeFieldWith := func(reqs []corev1.NodeSelectorRequirement) corev1.NodeSelectorTerm {
		t := *nodeField.DeepCopy()
		t.MatchExpressions = reqs
		return t
	}
	tests := []struct {
		name     string
		pod      *corev1.Pod
		tenant   string
		want     []corev1.NodeSelectorTerm // nil: no required affinity
		applied  bool
		warnings int
	}{{
		name:    "default group, no affinity yet",
		pod:     newPod(),
		tenant:  "team-a",
		want:    []corev1.NodeSelectorTerm{term(generalReq())},
		applied: true,
	}, {
		name:    "allowed group label",
		pod:     newPod(withLabels(config.LabelHostGroup, "batch")),
		tenant:  "team-a",
		want:    []corev1.NodeSelectorTerm{term(batchReqs()...)},
		applied: true,
	}, {
		name:     "disallowed group label falls back to the default with a warning",
		pod:      newPod(withLabels(config.LabelHostGroup, "restricted")),
		tenant:   "team-a",
		want:     []corev1.NodeSelectorTerm{term(generalReq())},
		applied:  true,
		warnings: 1,
	}, {
		name:    "no default: one term per allowed group",
		pod:     newPod(),
		tenant:  "team-multi",
		want:    []corev1.NodeSelectorTerm{term(generalReq()), term(batchReqs()...)},
		applied: true,
	}, {
		name:    "existing terms get the group ANDed in, matchFields terms too",
		pod:     newPod(withRequiredTerms(term(zone), nodeField)),
		tenant:  "team-a",
		want:    []corev1.NodeSelectorTerm{term(withGeneral(zone)...), nodeFieldWith(withGeneral())},
		applied: true,
	}, {
		name:   "several groups: cross product of terms and groups",
		pod:    newPod(withRequiredTerms(term(zone), term(ssd))),
		tenant: "team-multi",
		want: []corev1.NodeSelectorTerm{
			term(withGeneral(zone)...), term(withBatch(zone)...),
			term(withGeneral(ssd)...), term(withBatch(ssd)...),
		},
		applied: true,
	}, {
		name:   "a term already inside a group is kept, the others crossed",
		pod:    newPod(withRequiredTerms(term(withBatch(zone)...), term(ssd))),
		tenant: "team-multi",
		want: []corev1.NodeSelectorTerm{
			term(withBatch(zone)...),
			term(withGeneral(ssd)...), term(withBatch(ssd)...),
		},
		applied: true,
	}, {
		name:    "a term naming another group cannot escape: both are required",
		pod:     newPod(withRequiredTerms(term(req(config.LabelHostGroup, corev1.NodeSelectorOpIn, "restricted")))),
		tenant:  "team-a",
		want:    []corev1.NodeSelectorTerm{term(req(config.LabelHostGroup, corev1.NodeSelectorOpIn, "restricted"), generalReq())},
		applied: true,
	}, {
		name:   "identical requirements are not repeated",
		pod:    newPod(withRequiredTerms(term(zone, generalReq()))),
		tenant: "team-a",
		want:   []corev1.NodeSelectorTerm{term(zone, generalReq())},
	}, {
		name:    "empty terms match nothing and stay empty",
		pod:     newPod(withRequiredTerms(term(), term(zone))),
		tenant:  "team-a",
		want:    []corev1.NodeSelectorTerm{term(), term(withGeneral(zone)...)},
		applied: true,
	}, {
		name:   "tenant with zero groups is not confined",
		pod:    newPod(withLabels(config.LabelHostGroup, "general")),
		tenant: "team-none",
		// The label names a group the tenant may not use: warned, ignored.
		warnings: 1,
	}, {
		name:     "unknown tenant is not confined, with a warning",
		pod:      newPod(),
		tenant:   "team-z",
		warnings: 1,
	}, {
		name: "not a tenant",
		pod:  newPod(withRequiredTerms(term(zone))),
		want: []corev1.NodeSelectorTerm{term(zone)},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := mutate(t, cfg, tt.pod, tenantInput("apps", tt.tenant))
			assert.Equal(t, tt.want, requiredTermsOf(res.Pod))
			assert.Equal(t, tt.applied, contains(res.Applied, RuleHostGroup), "applied: %v", res.Applied)
			assert.Len(t, res.Warnings, tt.warnings, "warnings: %v", res.Warnings)
			if tt.want == nil {
				assert.Nil(t, res.Pod.Spec.Affinity, "no empty affinity is left behind")
			}
		})
	}
}

func TestDisallowedGroupWarningText(t *testing.T) {
	cfg := parseConfig(t, hostGroupsYAML)
	res := MutatePod(cfg, newPod(withLabels(config.LabelHostGroup, "restricted")), tenantInput("apps", "team-a"))
	require.Len(t, res.Warnings, 1)
	assert.Equal(t, `pod label harbormaster.io/host-group="restricted" names a host group tenant "team-a" may not use; ignored, using host group(s) general`, res.Warnings[0])
}

func TestDedicatedPools(t *testing.T) {
	cfg := parseConfig(t, hostGroupsYAML, poolsYAML, "antiAffinity: {enabled: false}\n")
	toleration := func(pool string) corev1.Toleration {
		return corev1.Toleration{Key: config.LabelDedicated, Operator: corev1.TolerationOpEqual, Value: pool, Effect: corev1.TaintEffectNoSchedule}
	}
	notIn := func(pools ...string) corev1.NodeSelectorRequirement {
		return req(config.LabelDedicated, corev1.NodeSelectorOpNotIn, pools...)
	}
	in := func(pools ...string) corev1.NodeSelectorRequirement {
		return req(config.LabelDedicated, corev1.NodeSelectorOpIn, pools...)
	}
	zone := req("topology.kubernetes.io/zone", corev1.NodeSelectorOpIn, "a")
	tests := []struct {
		name        string
		pod         *corev1.Pod
		tenant      string
		want        []corev1.NodeSelectorTerm
		preferred   []corev1.PreferredSchedulingTerm
		tolerations []corev1.Toleration
		applied     []string
	}{{
		name:        "required owner: the pool replaces host groups",
		pod:         newPod(withLabels("app.kubernetes.io/name", "spark")),
		tenant:      "team-a",
		want:        []corev1.NodeSelectorTerm{term(in("spark-a"), notIn("cache-a", "secure-b"))},
		tolerations: []corev1.Toleration{toleration("spark-a")},
		applied:     []string{RuleDedicated},
	}, {
		name:        "required owner with existing terms",
		pod:         newPod(withLabels("app.kubernetes.io/name", "spark"), withRequiredTerms(term(zone))),
		tenant:      "team-a",
		want:        []corev1.NodeSelectorTerm{term(zone, in("spark-a"), notIn("cache-a", "secure-b"))},
		tolerations: []corev1.Toleration{toleration("spark-a")},
		applied:     []string{RuleDedicated},
	}, {
		name:   "preferred owner: preference, and host-group confinement still applies",
		pod:    newPod(withLabels("app.kubernetes.io/name", "cache")),
		tenant: "team-a",
		want:   []corev1.NodeSelectorTerm{term(generalReq(), notIn("secure-b", "spark-a"))},
		preferred: []corev1.PreferredSchedulingTerm{{Weight: 100, Preference: corev1.NodeSelectorTerm{
			MatchExpressions: []corev1.NodeSelectorRequirement{in("cache-a")}}}},
		tolerations: []corev1.Toleration{toleration("cache-a")},
		applied:     []string{RuleHostGroup, RuleDedicated},
	}, {
		name:        "pool without app: every pod of the tenant owns it",
		pod:         newPod(),
		tenant:      "team-b",
		want:        []corev1.NodeSelectorTerm{term(in("secure-b"), notIn("cache-a", "spark-a"))},
		tolerations: []corev1.Toleration{toleration("secure-b")},
		applied:     []string{RuleDedicated},
	}, {
		name:    "tenant non-owner gets NotIn, no toleration",
		pod:     newPod(withLabels("app.kubernetes.io/name", "web")),
		tenant:  "team-a",
		want:    []corev1.NodeSelectorTerm{term(generalReq(), notIn("cache-a", "secure-b", "spark-a"))},
		applied: []string{RuleHostGroup, RuleDedicated},
	}, {
		name: "non-tenant with a self-declared toleration is fenced off",
		pod: newPod(withLabels("app.kubernetes.io/name", "spark"), func(p *corev1.Pod) {
			p.Spec.Tolerations = []corev1.Toleration{toleration("spark-a")}
		}),
		want:        []corev1.NodeSelectorTerm{term(notIn("cache-a", "secure-b", "spark-a"))},
		tolerations: []corev1.Toleration{toleration("spark-a")},
		applied:     []string{RuleDedicated},
	}, {
		name:   "other tenant's app label does not make an owner",
		pod:    newPod(withLabels("app.kubernetes.io/name", "spark"), withRequiredTerms(term(zone), term(req("x", corev1.NodeSelectorOpExists)))),
		tenant: "team-b",
		want: []corev1.NodeSelectorTerm{
			term(zone, in("secure-b"), notIn("cache-a", "spark-a")),
			term(req("x", corev1.NodeSelectorOpExists), in("secure-b"), notIn("cache-a", "spark-a")),
		},
		tolerations: []corev1.Toleration{toleration("secure-b")},
		applied:     []string{RuleDedicated},
	}, {
		name: "an owner's existing toleration is not repeated",
		pod: newPod(withLabels("app.kubernetes.io/name", "spark"), func(p *corev1.Pod) {
			p.Spec.Tolerations = []corev1.Toleration{toleration("spark-a")}
		}),
		tenant:      "team-a",
		want:        []corev1.NodeSelectorTerm{term(in("spark-a"), notIn("cache-a", "secure-b"))},
		tolerations: []corev1.Toleration{toleration("spark-a")},
		applied:     []string{RuleDedicated},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := mutate(t, cfg, tt.pod, tenantInput("apps", tt.tenant))
			assert.Equal(t, tt.want, requiredTermsOf(res.Pod))
			var preferred []corev1.PreferredSchedulingTerm
			if a := res.Pod.Spec.Affinity; a != nil && a.NodeAffinity != nil {
				preferred = a.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution
			}
			assert.Equal(t, tt.preferred, preferred)
			assert.Equal(t, tt.tolerations, res.Pod.Spec.Tolerations)
			assert.Equal(t, tt.applied, res.Applied)
		})
	}
}

func TestRequiredOwnerUsesNoHostGroupRatio(t *testing.T) {
	cfg := parseConfig(t, overcommitYAML, hostGroupsYAML, poolsYAML)
	pod := newPod(withLabels("app.kubernetes.io/name", "spark", config.LabelHostGroup, "batch"),
		withContainers(container("app", rl("cpu", "1"), rl("cpu", "1"))))
	res := mutate(t, cfg, pod, tenantInput("apps", "team-a"))
	assertQuantities(t, rl("cpu", "250m"), res.Pod.Spec.Containers[0].Resources.Requests,
		"the pool replaces the host group, so the batch ratio does not apply")
}

func TestMutatePodTemplate(t *testing.T) {
	cfg := parseConfig(t, overcommitYAML, hostGroupsYAML, poolsYAML, "antiAffinity: {workloadClasses: {hot: {}}}\n")
	tmpl := &corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{
			"app.kubernetes.io/name": "agent", config.LabelWorkloadClass: "hot"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{container("agent", rl("cpu", "1"), rl("cpu", "1"))}},
	}
	in := tenantInput("apps", "team-a")
	before := tmpl.DeepCopy()
	out, applied := MutatePodTemplate(cfg, tmpl, in)
	require.Equal(t, before, tmpl, "the input template must not be modified")
	assert.Equal(t, []string{RuleHostGroup, RuleDedicated}, applied)
	wantTerms := []corev1.NodeSelectorTerm{term(generalReq(), req(config.LabelDedicated, corev1.NodeSelectorOpNotIn, "cache-a", "secure-b", "spark-a"))}
	assert.Equal(t, wantTerms, requiredTerms(&out.Spec))
	assert.Nil(t, out.Spec.Affinity.PodAntiAffinity, "templates get confinement only")
	assertQuantities(t, rl("cpu", "1"), out.Spec.Containers[0].Resources.Requests, "templates are not overcommitted")

	again, applied := MutatePodTemplate(cfg, out, in)
	assert.Equal(t, out, again)
	assert.Empty(t, applied)

	t.Run("owner template gets its toleration", func(t *testing.T) {
		owner := tmpl.DeepCopy()
		owner.Labels["app.kubernetes.io/name"] = "spark"
		out, _ := MutatePodTemplate(cfg, owner, in)
		assert.Equal(t, []corev1.Toleration{{Key: config.LabelDedicated, Operator: corev1.TolerationOpEqual, Value: "spark-a", Effect: corev1.TaintEffectNoSchedule}}, out.Spec.Tolerations)
	})

	t.Run("exempt", func(t *testing.T) {
		exempt := tmpl.DeepCopy()
		exempt.Labels[config.LabelExempt] = "true"
		out, applied := MutatePodTemplate(cfg, exempt, in)
		assert.Equal(t, exempt, out)
		assert.Empty(t, applied)
		out, applied = MutatePodTemplate(cfg, tmpl, tenantInput("kube-system", "team-a"))
		assert.Equal(t, tmpl, out)
		assert.Empty(t, applied)
	})

	t.Run("the DaemonSet controller's pod keeps its confinement", func(t *testing.T) {
		// The controller replaces required terms with a matchFields term
		// naming the node; the pod's own admission confines it again.
		pod := &corev1.Pod{ObjectMeta: out.ObjectMeta, Spec: *out.Spec.DeepCopy()}
		pod.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms = []corev1.NodeSelectorTerm{{
			MatchFields: []corev1.NodeSelectorRequirement{req(metav1.ObjectNameField, corev1.NodeSelectorOpIn, "node-1")},
		}}
		res := mutate(t, cfg, pod, in)
		terms := requiredTermsOf(res.Pod)
		require.Len(t, terms, 1)
		assert.Equal(t, []corev1.NodeSelectorRequirement{generalReq(), req(config.LabelDedicated, corev1.NodeSelectorOpNotIn, "cache-a", "secure-b", "spark-a")}, terms[0].MatchExpressions)
		assert.Len(t, terms[0].MatchFields, 1)
	})
}
