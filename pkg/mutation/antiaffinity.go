package mutation

import (
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/harbormaster-dev/harbormaster/pkg/config"
)

// addAntiAffinity adds the soft identity anti-affinity and the workload
// class term (rule 3) to a copied pod spec and reports which it added.
func addAntiAffinity(aa config.AntiAffinity, spec *corev1.PodSpec, podLabels map[string]string) (identityAdded, classAdded bool) {
	if aa.TopologyKey == "" {
		// Only in an undefaulted config; a term without a key is invalid.
		aa.TopologyKey = config.DefaultTopologyKey
	}
	// Decide on the identity term before adding the class term, which
	// would otherwise count as the pod's own anti-affinity.
	if identity := podIdentity(aa.IdentityLabels, podLabels); identity != nil &&
		!declaresPodAntiAffinity(spec) && !spreadsItself(spec, aa.TopologyKey, podLabels) {
		addPodAntiAffinityTerm(spec, corev1.WeightedPodAffinityTerm{
			Weight: weightOf(aa.Weight),
			PodAffinityTerm: corev1.PodAffinityTerm{
				LabelSelector: &metav1.LabelSelector{MatchLabels: identity},
				TopologyKey:   aa.TopologyKey,
			},
		})
		identityAdded = true
	}

	if className := podLabels[config.LabelWorkloadClass]; className != "" {
		classAdded = addWorkloadClassTerm(aa, spec, className)
	}
	return identityAdded, classAdded
}

// addWorkloadClassTerm makes pods of a configured class softly repel each
// other. It is added even next to the pod's own anti-affinity; an identical
// term already present makes it a no-op.
func addWorkloadClassTerm(aa config.AntiAffinity, spec *corev1.PodSpec, className string) bool {
	class, ok := aa.WorkloadClasses[className]
	if !ok {
		return false
	}
	topologyKey := class.TopologyKey
	if topologyKey == "" {
		topologyKey = aa.TopologyKey
	}
	weight := class.Weight
	if weight == nil {
		weight = aa.Weight
	}
	term := corev1.WeightedPodAffinityTerm{
		Weight: weightOf(weight),
		PodAffinityTerm: corev1.PodAffinityTerm{
			LabelSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
				Key: config.LabelWorkloadClass, Operator: metav1.LabelSelectorOpIn, Values: []string{className},
			}}},
			TopologyKey: topologyKey,
		},
	}
	if hasPreferredPodAntiAffinityTerm(spec, term) {
		return false
	}
	addPodAntiAffinityTerm(spec, term)
	return true
}

// podIdentity returns the labels of the first identity set fully present
// on the pod, nil when none is.
func podIdentity(sets [][]string, podLabels map[string]string) map[string]string {
	for _, set := range sets {
		if len(set) == 0 {
			continue
		}
		identity := make(map[string]string, len(set))
		for _, key := range set {
			v, ok := podLabels[key]
			if !ok {
				identity = nil
				break
			}
			identity[key] = v
		}
		if identity != nil {
			return identity
		}
	}
	return nil
}

func declaresPodAntiAffinity(spec *corev1.PodSpec) bool {
	if spec.Affinity == nil || spec.Affinity.PodAntiAffinity == nil {
		return false
	}
	paa := spec.Affinity.PodAntiAffinity
	return len(paa.RequiredDuringSchedulingIgnoredDuringExecution) > 0 || len(paa.PreferredDuringSchedulingIgnoredDuringExecution) > 0
}

// spreadsItself reports whether a topology spread constraint over the same
// topology key already selects the pod's own replicas.
func spreadsItself(spec *corev1.PodSpec, topologyKey string, podLabels map[string]string) bool {
	for _, c := range spec.TopologySpreadConstraints {
		if c.TopologyKey != topologyKey || c.LabelSelector == nil {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(c.LabelSelector)
		if err == nil && sel.Matches(labels.Set(podLabels)) {
			return true
		}
	}
	return false
}

func hasPreferredPodAntiAffinityTerm(spec *corev1.PodSpec, term corev1.WeightedPodAffinityTerm) bool {
	if spec.Affinity == nil || spec.Affinity.PodAntiAffinity == nil {
		return false
	}
	for _, t := range spec.Affinity.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution {
		if apiequality.Semantic.DeepEqual(t, term) {
			return true
		}
	}
	return false
}

func addPodAntiAffinityTerm(spec *corev1.PodSpec, term corev1.WeightedPodAffinityTerm) {
	if spec.Affinity == nil {
		spec.Affinity = &corev1.Affinity{}
	}
	if spec.Affinity.PodAntiAffinity == nil {
		spec.Affinity.PodAntiAffinity = &corev1.PodAntiAffinity{}
	}
	paa := spec.Affinity.PodAntiAffinity
	paa.PreferredDuringSchedulingIgnoredDuringExecution = append(paa.PreferredDuringSchedulingIgnoredDuringExecution, term)
}

func weightOf(w *int32) int32 {
	if w == nil {
		return config.DefaultAntiAffinityWeight
	}
	return *w
}
