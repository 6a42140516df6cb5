package mutation

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"

	"github.com/harbormaster-dev/harbormaster/pkg/config"
)

// dedicatedPreferenceWeight is the node-affinity weight that draws owner
// pods to a pool with placement "preferred".
const dedicatedPreferenceWeight = 100

// placementResult is what host-group confinement and dedicated pools did.
type placementResult struct {
	applied  []string
	warnings []string
	// hostGroup is the single host group the pod is confined to, "" when
	// it is confined to several, to a dedicated pool, or not at all.
	hostGroup string
}

// confine applies host-group confinement (rule 4) and dedicated pools
// (rule 5) to a copied pod spec.
func confine(cfg *config.Config, spec *corev1.PodSpec, podLabels, nsLabels map[string]string) placementResult {
	var pr placementResult
	tenantName, tenant, isTenant := cfg.TenantForNamespace(nsLabels)
	if !isTenant {
		if tenantName != "" {
			pr.warnings = append(pr.warnings, fmt.Sprintf(
				"namespace label %s=%q names no configured tenant; the pod is not confined to host groups", config.LabelTenant, tenantName))
		}
		tenantName = ""
	}

	owned := cfg.OwnedPools(tenantName, podLabels)
	var requiredPools, preferredPools, notOwned []string
	for _, pool := range owned {
		if cfg.DedicatedPools[pool].Placement == config.PlacementPreferred {
			preferredPools = append(preferredPools, pool)
		} else {
			requiredPools = append(requiredPools, pool)
		}
	}
	for _, pool := range sortedPoolNames(cfg) {
		if !slices.Contains(owned, pool) {
			notOwned = append(notOwned, pool)
		}
	}

	terms := requiredTerms(spec)
	hostGroupChanged, dedicatedChanged := false, false
	switch {
	case len(requiredPools) > 0:
		// Dedicated nodes are the owner's exclusive area: the pool replaces
		// the host groups instead of having to lie inside one of them.
		terms, dedicatedChanged = confineTerms(terms, [][]corev1.NodeSelectorRequirement{{{
			Key: config.LabelDedicated, Operator: corev1.NodeSelectorOpIn, Values: requiredPools,
		}}})
	case isTenant:
		groups, warning := pickHostGroups(cfg, tenantName, *tenant, podLabels)
		if warning != "" {
			pr.warnings = append(pr.warnings, warning)
		}
		if len(groups) == 1 {
			pr.hostGroup = groups[0]
		}
		var groupReqs [][]corev1.NodeSelectorRequirement
		for _, g := range groups {
			groupReqs = append(groupReqs, cfg.HostGroups[g].NodeSelector.Requirements())
		}
		terms, hostGroupChanged = confineTerms(terms, groupReqs)
	}
	if len(notOwned) > 0 {
		// NotIn also matches nodes without the label, so it only fences off
		// other owners' pools, whatever tolerations the pod declares.
		var changed bool
		terms, changed = addToEveryTerm(terms, corev1.NodeSelectorRequirement{
			Key: config.LabelDedicated, Operator: corev1.NodeSelectorOpNotIn, Values: notOwned,
		})
		dedicatedChanged = dedicatedChanged || changed
	}
	if hostGroupChanged || dedicatedChanged {
		setRequiredTerms(spec, terms)
	}

	if len(preferredPools) > 0 && len(requiredPools) == 0 {
		dedicatedChanged = addPreferredTerm(spec, corev1.PreferredSchedulingTerm{
			Weight: dedicatedPreferenceWeight,
			Preference: corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{{
				Key: config.LabelDedicated, Operator: corev1.NodeSelectorOpIn, Values: preferredPools,
			}}},
		}) || dedicatedChanged
	}
	for _, pool := range owned {
		dedicatedChanged = addToleration(spec, corev1.Toleration{
			Key: config.LabelDedicated, Operator: corev1.TolerationOpEqual, Value: pool, Effect: corev1.TaintEffectNoSchedule,
		}) || dedicatedChanged
	}

	if hostGroupChanged {
		pr.applied = append(pr.applied, RuleHostGroup)
	}
	if dedicatedChanged {
		pr.applied = append(pr.applied, RuleDedicated)
	}
	return pr
}

// pickHostGroups returns the host groups a tenant's pod is confined to: the
// one its label picks if allowed, else the tenant's default, else all of
// the tenant's groups. Groups the config does not define are dropped (only
// possible in an unvalidated config).
func pickHostGroups(cfg *config.Config, tenantName string, tenant config.Tenant, podLabels map[string]string) (groups []string, warning string) {
	switch picked := podLabels[config.LabelHostGroup]; {
	case picked != "" && tenant.AllowsHostGroup(picked):
		groups = []string{picked}
	case tenant.DefaultHostGroup != "":
		groups = []string{tenant.DefaultHostGroup}
	default:
		groups = slices.Clone(tenant.HostGroups)
	}
	groups = slices.DeleteFunc(groups, func(g string) bool {
		_, defined := cfg.HostGroups[g]
		return !defined
	})
	if picked := podLabels[config.LabelHostGroup]; picked != "" && !tenant.AllowsHostGroup(picked) {
		placed := "no host group restriction"
		if len(groups) > 0 {
			placed = "host group(s) " + strings.Join(groups, ", ")
		}
		warning = fmt.Sprintf("pod label %s=%q names a host group tenant %q may not use; ignored, using %s",
			config.LabelHostGroup, picked, tenantName, placed)
	}
	return groups, warning
}

func sortedPoolNames(cfg *config.Config) []string {
	names := make([]string, 0, len(cfg.DedicatedPools))
	for name := range cfg.DedicatedPools {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

func requiredTerms(spec *corev1.PodSpec) []corev1.NodeSelectorTerm {
	if spec.Affinity == nil || spec.Affinity.NodeAffinity == nil || spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return nil
	}
	return spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
}

func setRequiredTerms(spec *corev1.PodSpec, terms []corev1.NodeSelectorTerm) {
	na := nodeAffinity(spec)
	if na.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		na.RequiredDuringSchedulingIgnoredDuringExecution = &corev1.NodeSelector{}
	}
	na.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms = terms
}

func nodeAffinity(spec *corev1.PodSpec) *corev1.NodeAffinity {
	if spec.Affinity == nil {
		spec.Affinity = &corev1.Affinity{}
	}
	if spec.Affinity.NodeAffinity == nil {
		spec.Affinity.NodeAffinity = &corev1.NodeAffinity{}
	}
	return spec.Affinity.NodeAffinity
}

// confineTerms restricts required node selector terms to the union of
// groups, each group being requirements that are ANDed. Terms are ORed, so
// every term is ANDed with every group: (T1∨T2)∧(G1∨G2) = ∨(Ti∧Gj);
// appending a term would be an escape. A term that already contains all
// requirements of one of the groups is inside it and kept as is, which
// makes the rule idempotent. Empty terms match no node and are kept:
// adding requirements would make them match. With no terms at all, one
// term per group is created.
func confineTerms(terms []corev1.NodeSelectorTerm, groups [][]corev1.NodeSelectorRequirement) ([]corev1.NodeSelectorTerm, bool) {
	if len(groups) == 0 {
		return terms, false
	}
	if len(terms) == 0 {
		out := make([]corev1.NodeSelectorTerm, 0, len(groups))
		for _, g := range groups {
			out = append(out, corev1.NodeSelectorTerm{MatchExpressions: cloneRequirements(g)})
		}
		return out, true
	}
	var out []corev1.NodeSelectorTerm
	changed := false
	for i, t := range terms {
		if isEmptyTerm(t) || containsAnyGroup(t, groups) {
			if changed {
				out = append(out, t)
			}
			continue
		}
		if !changed {
			out = make([]corev1.NodeSelectorTerm, 0, len(terms)*len(groups))
			out = append(out, terms[:i]...)
			changed = true
		}
		for _, g := range groups {
			nt := *t.DeepCopy()
			for _, r := range g {
				if !hasRequirement(nt.MatchExpressions, r) {
					nt.MatchExpressions = append(nt.MatchExpressions, *r.DeepCopy())
				}
			}
			out = append(out, nt)
		}
	}
	if !changed {
		return terms, false
	}
	return out, true
}

// addToEveryTerm ANDs req into every non-empty term that lacks it, or
// creates a term of it when there is none.
func addToEveryTerm(terms []corev1.NodeSelectorTerm, req corev1.NodeSelectorRequirement) ([]corev1.NodeSelectorTerm, bool) {
	if len(terms) == 0 {
		return []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{req}}}, true
	}
	changed := false
	for i := range terms {
		if isEmptyTerm(terms[i]) || hasRequirement(terms[i].MatchExpressions, req) {
			continue
		}
		terms[i].MatchExpressions = append(terms[i].MatchExpressions, *req.DeepCopy())
		changed = true
	}
	return terms, changed
}

func isEmptyTerm(t corev1.NodeSelectorTerm) bool {
	return len(t.MatchExpressions) == 0 && len(t.MatchFields) == 0
}

func containsAnyGroup(t corev1.NodeSelectorTerm, groups [][]corev1.NodeSelectorRequirement) bool {
	for _, g := range groups {
		if containsAll(t.MatchExpressions, g) {
			return true
		}
	}
	return false
}

func containsAll(have, want []corev1.NodeSelectorRequirement) bool {
	for _, r := range want {
		if !hasRequirement(have, r) {
			return false
		}
	}
	return true
}

func hasRequirement(have []corev1.NodeSelectorRequirement, r corev1.NodeSelectorRequirement) bool {
	for _, h := range have {
		if h.Key == r.Key && h.Operator == r.Operator && slices.Equal(h.Values, r.Values) {
			return true
		}
	}
	return false
}

func cloneRequirements(reqs []corev1.NodeSelectorRequirement) []corev1.NodeSelectorRequirement {
	out := make([]corev1.NodeSelectorRequirement, len(reqs))
	for i := range reqs {
		reqs[i].DeepCopyInto(&out[i])
	}
	return out
}

func addPreferredTerm(spec *corev1.PodSpec, term corev1.PreferredSchedulingTerm) bool {
	if spec.Affinity != nil && spec.Affinity.NodeAffinity != nil {
		for _, t := range spec.Affinity.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution {
			if apiequality.Semantic.DeepEqual(t, term) {
				return false
			}
		}
	}
	na := nodeAffinity(spec)
	na.PreferredDuringSchedulingIgnoredDuringExecution = append(na.PreferredDuringSchedulingIgnoredDuringExecution, term)
	return true
}

func addToleration(spec *corev1.PodSpec, tol corev1.Toleration) bool {
	for _, t := range spec.Tolerations {
		if t.Key == tol.Key && t.Operator == tol.Operator && t.Value == tol.Value && t.Effect == tol.Effect && t.TolerationSeconds == nil {
			return false
		}
	}
	spec.Tolerations = append(spec.Tolerations, tol)
	return true
}
