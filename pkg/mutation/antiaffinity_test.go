package mutation

import (
	"testing"

	"github.com/stretchr/testify/assert"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/harbormaster-dev/harbormaster/pkg/config"
)

func TestAntiAffinity(t *testing.T) {
	cfg := parseConfig(t, `antiAffinity:
  workloadClasses:
    cpu-intensive: {weight: 80}
    zonal: {topologyKey: topology.kubernetes.io/zone}
`)
	identityTerm := func(weight int32, labels map[string]string) corev1.WeightedPodAffinityTerm {
		return corev1.WeightedPodAffinityTerm{Weight: weight, PodAffinityTerm: corev1.PodAffinityTerm{
			LabelSelector: &metav1.LabelSelector{MatchLabels: labels}, TopologyKey: "kubernetes.io/hostname"}}
	}
	classTerm := func(weight int32, class, topologyKey string) corev1.WeightedPodAffinityTerm {
		return corev1.WeightedPodAffinityTerm{Weight: weight, PodAffinityTerm: corev1.PodAffinityTerm{
			LabelSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
				Key: config.LabelWorkloadClass, Operator: metav1.LabelSelectorOpIn, Values: []string{class}}}},
			TopologyKey: topologyKey}}
	}
	ownTerm := identityTerm(10, map[string]string{"mine": "x"})
	withOwnAntiAffinity := func(p *corev1.Pod) {
		p.Spec.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
			PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{ownTerm}}}
	}
	withSpread := func(topologyKey string, selector map[string]string) podOption {
		return func(p *corev1.Pod) {
			p.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{
				MaxSkew: 1, TopologyKey: topologyKey, WhenUnsatisfiable: corev1.ScheduleAnyway,
				LabelSelector: &metav1.LabelSelector{MatchLabels: selector}}}
		}
	}
	nameAndInstance := map[string]string{"app.kubernetes.io/name": "web", "app.kubernetes.io/instance": "shop"}

	tests := []struct {
		name    string
		cfg     *config.Config
		pod     *corev1.Pod
		want    []corev1.WeightedPodAffinityTerm
		applied []string
	}{{
		name:    "first identity set fully present wins",
		pod:     newPod(withLabels("app.kubernetes.io/name", "web", "app.kubernetes.io/instance", "shop", "app", "legacy")),
		want:    []corev1.WeightedPodAffinityTerm{identityTerm(50, nameAndInstance)},
		applied: []string{RuleAntiAffinity},
	}, {
		name:    "later set when an earlier one is incomplete",
		pod:     newPod(withLabels("app.kubernetes.io/instance", "shop", "app", "legacy")),
		want:    []corev1.WeightedPodAffinityTerm{identityTerm(50, map[string]string{"app": "legacy"})},
		applied: []string{RuleAntiAffinity},
	}, {
		name: "no identity",
		pod:  newPod(withLabels("team", "a")),
	}, {
		name: "pod declares its own anti-affinity",
		pod:  newPod(withLabels("app", "legacy"), withOwnAntiAffinity),
		want: []corev1.WeightedPodAffinityTerm{ownTerm},
	}, {
		name: "spread constraint on the same key selecting the pod",
		pod:  newPod(withLabels("app", "legacy", "tier", "fe"), withSpread("kubernetes.io/hostname", map[string]string{"tier": "fe"})),
	}, {
		name:    "spread constraint on another key does not count",
		pod:     newPod(withLabels("app", "legacy"), withSpread("topology.kubernetes.io/zone", map[string]string{"app": "legacy"})),
		want:    []corev1.WeightedPodAffinityTerm{identityTerm(50, map[string]string{"app": "legacy"})},
		applied: []string{RuleAntiAffinity},
	}, {
		name:    "spread constraint selecting other pods does not count",
		pod:     newPod(withLabels("app", "legacy"), withSpread("kubernetes.io/hostname", map[string]string{"app": "other"})),
		want:    []corev1.WeightedPodAffinityTerm{identityTerm(50, map[string]string{"app": "legacy"})},
		applied: []string{RuleAntiAffinity},
	}, {
		name: "disabled",
		cfg:  parseConfig(t, "antiAffinity: {enabled: false, workloadClasses: {cpu-intensive: {}}}\n"),
		pod:  newPod(withLabels("app", "legacy", config.LabelWorkloadClass, "cpu-intensive")),
	}, {
		name:    "workload class with identity",
		pod:     newPod(withLabels("app", "legacy", config.LabelWorkloadClass, "cpu-intensive")),
		want:    []corev1.WeightedPodAffinityTerm{identityTerm(50, map[string]string{"app": "legacy"}), classTerm(80, "cpu-intensive", "kubernetes.io/hostname")},
		applied: []string{RuleAntiAffinity, RuleWorkloadClass},
	}, {
		name:    "workload class next to the pod's own anti-affinity",
		pod:     newPod(withLabels(config.LabelWorkloadClass, "zonal"), withOwnAntiAffinity),
		want:    []corev1.WeightedPodAffinityTerm{ownTerm, classTerm(50, "zonal", "topology.kubernetes.io/zone")},
		applied: []string{RuleWorkloadClass},
	}, {
		name: "workload class term already present",
		pod: newPod(withLabels(config.LabelWorkloadClass, "cpu-intensive"), func(p *corev1.Pod) {
			p.Spec.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
				PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{classTerm(80, "cpu-intensive", "kubernetes.io/hostname")}}}
		}),
		want: []corev1.WeightedPodAffinityTerm{classTerm(80, "cpu-intensive", "kubernetes.io/hostname")},
	}, {
		name: "unconfigured workload class",
		pod:  newPod(withLabels(config.LabelWorkloadClass, "mystery")),
	}, {
		name:    "explicit empty identity sets keep workload classes",
		cfg:     parseConfig(t, "antiAffinity: {identityLabels: [], workloadClasses: {cpu-intensive: {}}}\n"),
		pod:     newPod(withLabels("app", "legacy", config.LabelWorkloadClass, "cpu-intensive")),
		want:    []corev1.WeightedPodAffinityTerm{classTerm(50, "cpu-intensive", "kubernetes.io/hostname")},
		applied: []string{RuleWorkloadClass},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.cfg
			if c == nil {
				c = cfg
			}
			res := mutate(t, c, tt.pod, Input{Namespace: "apps"})
			var got []corev1.WeightedPodAffinityTerm
			if a := res.Pod.Spec.Affinity; a != nil && a.PodAntiAffinity != nil {
				got = a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution
			}
			assert.Equal(t, tt.want, got)
			assert.Equal(t, tt.applied, res.Applied)
			if tt.want == nil {
				assert.Nil(t, res.Pod.Spec.Affinity, "no empty affinity is left behind")
			}
		})
	}
}
