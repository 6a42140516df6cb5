package mutation

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/harbormaster-dev/harbormaster/pkg/config"
)

const header = "apiVersion: config.harbormaster.io/v1alpha1\nkind: HarbormasterConfig\n"

const hostGroupsYAML = `hostGroups:
  general: {nodeSelector: {matchLabels: {harbormaster.io/host-group: general}}}
  batch:
    nodeSelector:
      matchLabels: {harbormaster.io/host-group: batch}
      matchExpressions: [{key: kubernetes.io/arch, operator: In, values: [amd64]}]
  restricted: {nodeSelector: {matchLabels: {harbormaster.io/host-group: restricted}}}
tenants:
  team-a: {hostGroups: [general, batch], defaultHostGroup: general}
  team-multi: {hostGroups: [general, batch]}
  team-none: {}
  team-b: {hostGroups: [restricted]}
`

const poolsYAML = `dedicatedPools:
  spark-a: {tenant: team-a, app: spark}
  cache-a: {tenant: team-a, app: cache, placement: preferred}
  secure-b: {tenant: team-b}
`

const overcommitYAML = `overcommit:
  default: {cpu: 4, memory: 2}
  hostGroups: {batch: {cpu: 8}}
  namespaces: {team-a-web: {cpu: 10}}
`

func parseConfig(t testing.TB, parts ...string) *config.Config {
	t.Helper()
	doc := header
	for _, p := range parts {
		doc += p
	}
	c, err := config.Parse([]byte(doc))
	require.NoError(t, err)
	return c
}

// generalReq and batchReqs are the host groups' requirements as the config
// renders them.
func generalReq() corev1.NodeSelectorRequirement {
	return corev1.NodeSelectorRequirement{Key: config.LabelHostGroup, Operator: corev1.NodeSelectorOpIn, Values: []string{"general"}}
}

func batchReqs() []corev1.NodeSelectorRequirement {
	return []corev1.NodeSelectorRequirement{
		{Key: config.LabelHostGroup, Operator: corev1.NodeSelectorOpIn, Values: []string{"batch"}},
		{Key: "kubernetes.io/arch", Operator: corev1.NodeSelectorOpIn, Values: []string{"amd64"}},
	}
}

func req(key string, op corev1.NodeSelectorOperator, values ...string) corev1.NodeSelectorRequirement {
	return corev1.NodeSelectorRequirement{Key: key, Operator: op, Values: values}
}

func term(reqs ...corev1.NodeSelectorRequirement) corev1.NodeSelectorTerm {
	return corev1.NodeSelectorTerm{MatchExpressions: reqs}
}

// rl builds a resource list from name/quantity pairs.
func rl(kv ...string) corev1.ResourceList {
	out := corev1.ResourceList{}
	for i := 0; i < len(kv); i += 2 {
		out[corev1.ResourceName(kv[i])] = resource.MustParse(kv[i+1])
	}
	return out
}

func container(name string, requests, limits corev1.ResourceList) corev1.Container {
	return corev1.Container{Name: name, Image: "registry.example/app:1", Resources: corev1.ResourceRequirements{Requests: requests, Limits: limits}}
}

type podOption func(*corev1.Pod)

func newPod(opts ...podOption) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "apps"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{container("app", nil, nil)}},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

func withLabels(kv ...string) podOption {
	return func(p *corev1.Pod) {
		if p.Labels == nil {
			p.Labels = map[string]string{}
		}
		for i := 0; i < len(kv); i += 2 {
			p.Labels[kv[i]] = kv[i+1]
		}
	}
}

func withContainers(cs ...corev1.Container) podOption {
	return func(p *corev1.Pod) { p.Spec.Containers = cs }
}

func withRequiredTerms(terms ...corev1.NodeSelectorTerm) podOption {
	return func(p *corev1.Pod) {
		p.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: terms},
		}}
	}
}

func tenantInput(ns, tenant string) Input {
	in := Input{Namespace: ns, OwnNamespace: "harbormaster"}
	if tenant != "" {
		in.NamespaceLabels = map[string]string{config.LabelTenant: tenant}
	}
	return in
}

// mutate runs MutatePod and checks the properties every call must have:
// the input is untouched, and mutating the output again changes nothing
// and applies no rule.
func mutate(t *testing.T, cfg *config.Config, pod *corev1.Pod, in Input) Result {
	t.Helper()
	before := pod.DeepCopy()
	first := MutatePod(cfg, pod, in)
	require.Equal(t, before, pod, "the input pod must not be modified")
	require.NotNil(t, first.Pod)
	second := MutatePod(cfg, first.Pod, in)
	assert.Equal(t, first.Pod, second.Pod, "mutating a mutated pod must change nothing")
	assert.Empty(t, second.Applied, "no rule applies to a mutated pod")
	assert.Equal(t, first.Skipped, second.Skipped)
	return first
}

func requiredTermsOf(p *corev1.Pod) []corev1.NodeSelectorTerm {
	return requiredTerms(&p.Spec)
}

func assertQuantities(t *testing.T, want, got corev1.ResourceList, msgAndArgs ...any) {
	t.Helper()
	assert.Len(t, got, len(want), msgAndArgs...)
	for name, q := range want {
		g, ok := got[name]
		if assert.True(t, ok, "missing %s", name) {
			assert.Zero(t, q.Cmp(g), "%s: want %s, got %s", name, q.String(), g.String())
		}
	}
}
