package explain

import (
	"slices"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"

	"github.com/harbormaster-dev/harbormaster/pkg/config"
)

// Placement is where the mutated pod may run, read back from its spec
// rather than recomputed, so it shows what the patch really does.
type Placement struct {
	// HostGroups are the configured host groups the required node affinity
	// confines the pod to; empty when some term lies in no group.
	HostGroups []string `json:"hostGroups,omitempty"`
	// DedicatedPools are the pools a required `harbormaster.io/dedicated
	// In` confines the pod to.
	DedicatedPools []string `json:"dedicatedPools,omitempty"`
	// OwnedPools are the dedicated pools the pod owns (it tolerates them).
	OwnedPools []string `json:"ownedPools,omitempty"`
	// ExcludedPools are the pools a `NotIn` keeps the pod off.
	ExcludedPools []string `json:"excludedPools,omitempty"`
	// RequiredBefore and RequiredAfter are the required node affinity
	// terms when the mutation changed them.
	RequiredBefore []corev1.NodeSelectorTerm `json:"requiredBefore,omitempty"`
	RequiredAfter  []corev1.NodeSelectorTerm `json:"requiredAfter,omitempty"`
	// PreferredAdded and TolerationsAdded are what the mutation appended.
	PreferredAdded   []corev1.PreferredSchedulingTerm `json:"preferredAdded,omitempty"`
	TolerationsAdded []corev1.Toleration              `json:"tolerationsAdded,omitempty"`
}

func describePlacement(cfg *config.Config, nsLabels, podLabels map[string]string, before, after *corev1.PodSpec) *Placement {
	p := &Placement{}
	tenant, _, known := cfg.TenantForNamespace(nsLabels)
	if known {
		p.OwnedPools = cfg.OwnedPools(tenant, podLabels)
	}
	termsBefore, termsAfter := requiredTerms(before), requiredTerms(after)
	if !apiequality.Semantic.DeepEqual(termsBefore, termsAfter) {
		p.RequiredBefore, p.RequiredAfter = termsBefore, termsAfter
	}
	p.HostGroups = confiningGroups(cfg, termsAfter)
	for _, t := range termsAfter {
		for _, r := range t.MatchExpressions {
			if r.Key != config.LabelDedicated {
				continue
			}
			switch r.Operator {
			case corev1.NodeSelectorOpIn:
				p.DedicatedPools = appendNew(p.DedicatedPools, r.Values...)
			case corev1.NodeSelectorOpNotIn:
				p.ExcludedPools = appendNew(p.ExcludedPools, r.Values...)
			}
		}
	}
	slices.Sort(p.DedicatedPools)
	slices.Sort(p.ExcludedPools)
	for _, t := range preferredTerms(after) {
		if !slices.ContainsFunc(preferredTerms(before), func(b corev1.PreferredSchedulingTerm) bool { return apiequality.Semantic.DeepEqual(b, t) }) {
			p.PreferredAdded = append(p.PreferredAdded, t)
		}
	}
	for _, t := range after.Tolerations {
		if !slices.ContainsFunc(before.Tolerations, func(b corev1.Toleration) bool { return apiequality.Semantic.DeepEqual(b, t) }) {
			p.TolerationsAdded = append(p.TolerationsAdded, t)
		}
	}
	return p
}

// confiningGroups returns the host groups whose every requirement one of
// the terms carries, provided each non-empty term lies in some group: the
// terms are ORed, so a single term outside every group leaves the pod
// unconfined.
func confiningGroups(cfg *config.Config, terms []corev1.NodeSelectorTerm) []string {
	names := make([]string, 0, len(cfg.HostGroups))
	for name := range cfg.HostGroups {
		names = append(names, name)
	}
	slices.Sort(names)
	var groups []string
	for _, t := range terms {
		if len(t.MatchExpressions) == 0 && len(t.MatchFields) == 0 {
			continue // matches no node
		}
		inSome := false
		for _, name := range names {
			if containsAll(t.MatchExpressions, cfg.HostGroups[name].NodeSelector.Requirements()) {
				inSome = true
				groups = appendNew(groups, name)
			}
		}
		if !inSome {
			return nil
		}
	}
	slices.Sort(groups)
	return groups
}

func containsAll(have, want []corev1.NodeSelectorRequirement) bool {
	for _, w := range want {
		if !slices.ContainsFunc(have, func(h corev1.NodeSelectorRequirement) bool { return sameRequirement(h, w) }) {
			return false
		}
	}
	return len(want) > 0
}

// sameRequirement compares values as sets, as the policies do.
func sameRequirement(a, b corev1.NodeSelectorRequirement) bool {
	if a.Key != b.Key || a.Operator != b.Operator || len(a.Values) != len(b.Values) {
		return false
	}
	av, bv := slices.Clone(a.Values), slices.Clone(b.Values)
	slices.Sort(av)
	slices.Sort(bv)
	return slices.Equal(av, bv)
}

func appendNew(list []string, values ...string) []string {
	for _, v := range values {
		if !slices.Contains(list, v) {
			list = append(list, v)
		}
	}
	return list
}

func requiredTerms(spec *corev1.PodSpec) []corev1.NodeSelectorTerm {
	if spec.Affinity == nil || spec.Affinity.NodeAffinity == nil || spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return nil
	}
	return spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
}

func preferredTerms(spec *corev1.PodSpec) []corev1.PreferredSchedulingTerm {
	if spec.Affinity == nil || spec.Affinity.NodeAffinity == nil {
		return nil
	}
	return spec.Affinity.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution
}

// resourceChanges lists every container's requests before and after, in
// spec order: init containers, containers, then pod-level resources.
func resourceChanges(before, after *corev1.PodSpec) []ContainerResources {
	var out []ContainerResources
	add := func(name string, init bool, b, a corev1.ResourceRequirements) {
		out = append(out, ContainerResources{
			Container: name, Init: init, Limits: b.Limits, RequestsBefore: b.Requests, RequestsAfter: a.Requests,
			Changed: !apiequality.Semantic.DeepEqual(b.Requests, a.Requests),
		})
	}
	// The mutation never adds, removes or reorders containers.
	for i := range min(len(before.InitContainers), len(after.InitContainers)) {
		add(before.InitContainers[i].Name, true, before.InitContainers[i].Resources, after.InitContainers[i].Resources)
	}
	for i := range min(len(before.Containers), len(after.Containers)) {
		add(before.Containers[i].Name, false, before.Containers[i].Resources, after.Containers[i].Resources)
	}
	if before.Resources != nil && after.Resources != nil {
		add("", false, *before.Resources, *after.Resources)
	}
	return out
}
