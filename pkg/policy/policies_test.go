package policy

import (
	"context"
	"slices"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/harbormaster-dev/harbormaster/pkg/config"
)

// TestRealPolicies judges requests with the embedded policies through the
// engine, and checks that every decision is the same without
// input.config_index and without input.facts: the policies' fallbacks,
// which scan input.config and the reviewed object, must agree with what
// the engine derives from the configuration and the object.
func TestRealPolicies(t *testing.T) {
	bundle := loadEmbedded(t, nil)
	engine := NewEngine(bundle, EngineOptions{StrictBuiltinErrors: true})
	cfg := scaledConfig(30)
	base := mutatedPod(t, cfg, benchPod())

	addTerm := func(p *corev1.Pod, term corev1.NodeSelectorTerm) {
		req := p.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution
		req.NodeSelectorTerms = append(req.NodeSelectorTerms, term)
	}
	tests := []struct {
		name   string
		mutate func(*corev1.Pod)
		want   []string
	}{
		{name: "mutated pod"},
		{name: "common nodeSelector", mutate: func(p *corev1.Pod) { p.Spec.NodeSelector = map[string]string{"kubernetes.io/os": "linux"} }},
		{name: "pinned node", mutate: func(p *corev1.Pod) { p.Spec.NodeName = "node-7" }, want: []string{"HM-HG-001"}},
		{
			name:   "foreign host group",
			mutate: func(p *corev1.Pod) { p.Spec.NodeSelector = map[string]string{config.LabelHostGroup: "tenant-0001-web"} },
			want:   []string{"HM-HG-002", "HM-HG-003"},
		},
		{
			name: "foreign zone selector of a host group",
			mutate: func(p *corev1.Pod) {
				p.Spec.NodeSelector = map[string]string{"topology.kubernetes.io/zone": "eu-1a"}
			},
			want: []string{"HM-HG-003"},
		},
		{
			name: "term escaping the host groups",
			mutate: func(p *corev1.Pod) {
				addTerm(p, corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "topology.kubernetes.io/zone", Operator: corev1.NodeSelectorOpIn, Values: []string{"eu-1a"}}}})
			},
			want: []string{"HM-HG-004"},
		},
		{
			name: "owned pool term",
			mutate: func(p *corev1.Pod) {
				addTerm(p, corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: config.LabelDedicated, Operator: corev1.NodeSelectorOpIn, Values: []string{"team-a-db"}}}})
			},
		},
		{
			name: "foreign pool term",
			mutate: func(p *corev1.Pod) {
				addTerm(p, corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: config.LabelDedicated, Operator: corev1.NodeSelectorOpIn, Values: []string{"tenant-0010-pool"}}}})
			},
			want: []string{"HM-DH-004", "HM-HG-004"},
		},
		{
			name: "foreign pool toleration",
			mutate: func(p *corev1.Pod) {
				p.Spec.Tolerations = append(p.Spec.Tolerations, corev1.Toleration{Key: config.LabelDedicated, Operator: corev1.TolerationOpEqual, Value: "tenant-0010-pool"})
			},
			want: []string{"HM-DH-001"},
		},
		{
			name: "tolerations of every pool",
			mutate: func(p *corev1.Pod) {
				p.Spec.Tolerations = append(p.Spec.Tolerations,
					corev1.Toleration{Key: config.LabelDedicated, Operator: corev1.TolerationOpExists},
					corev1.Toleration{Operator: corev1.TolerationOpExists})
			},
			want: []string{"HM-DH-002", "HM-DH-003"},
		},
		{
			name:   "missing limits",
			mutate: func(p *corev1.Pod) { p.Spec.Containers[1].Resources.Limits = nil },
			want:   []string{"HM-RS-001"},
		},
		{
			name: "GPUs over the cap, model not pinned",
			mutate: func(p *corev1.Pod) {
				p.Spec.Containers[0].Resources.Limits["nvidia.com/gpu"] = resource.MustParse("4")
			},
			want: []string{"HM-RS-002", "HM-RS-003"},
		},
		{
			name:   "foreign registry",
			mutate: func(p *corev1.Pod) { p.Spec.InitContainers[0].Image = "quay.io/attacker/miner" },
			want:   []string{"HM-RG-001"},
		},
		{
			name: "tiny limit",
			mutate: func(p *corev1.Pod) {
				p.Spec.Containers[0].Resources.Limits[corev1.ResourceCPU] = resource.MustParse("1m")
			},
			want: []string{"HM-RS-004"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := base.DeepCopy()
			if tt.mutate != nil {
				tt.mutate(pod)
			}
			in := tenantInput(t, pod, cfg)
			d, err := engine.Evaluate(context.Background(), in)
			require.NoError(t, err)
			require.Equal(t, tt.want, d.RuleIDs(), "%v", d.Violations)

			// The same input without the index, the facts or both, straight
			// through the query.
			doc, err := BuildDocument(in)
			require.NoError(t, err)
			terms, err := newConfigTerms(cfg)
			require.NoError(t, err)
			v, err := doc.value(terms, engine.keys, inputOptions{facts: true})
			require.NoError(t, err)
			for _, drop := range [][]string{{"config_index"}, {"facts"}, {"config_index", "facts"}} {
				stripped := ast.NewObject()
				v.(ast.Object).Foreach(func(k, v *ast.Term) {
					if !slices.ContainsFunc(drop, func(d string) bool { return k.Equal(ast.StringTerm(d)) }) {
						stripped.Insert(k, v)
					}
				})
				rs, err := bundle.query.Eval(context.Background(), rego.EvalParsedInput(stripped))
				require.NoError(t, err)
				fallback, err := bundle.violations(rs, cfg.Policy.Enforcement)
				require.NoError(t, err)
				require.Equal(t, d.Violations, fallback, "without %v", drop)
			}
		})
	}
}
