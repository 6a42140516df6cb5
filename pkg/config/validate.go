package config

import (
	"fmt"
	"math"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Validate returns every problem of the configuration with its field path.
// Maps are walked in key order so the list is deterministic.
func (c *Config) Validate() field.ErrorList {
	var errs field.ErrorList
	if c.APIVersion != APIVersion {
		errs = append(errs, requiredOrUnsupported(field.NewPath("apiVersion"), c.APIVersion, APIVersion))
	}
	if c.Kind != Kind {
		errs = append(errs, requiredOrUnsupported(field.NewPath("kind"), c.Kind, Kind))
	}
	errs = append(errs, c.validateOvercommit(field.NewPath("overcommit"))...)
	errs = append(errs, validateAntiAffinity(c.AntiAffinity, field.NewPath("antiAffinity"))...)

	hgPath := field.NewPath("hostGroups")
	for _, name := range sortedKeys(c.HostGroups) {
		errs = append(errs, validateName(hgPath.Key(name), name)...)
		errs = append(errs, validateNodeSelector(c.HostGroups[name].NodeSelector, hgPath.Key(name).Child("nodeSelector"))...)
	}

	tPath := field.NewPath("tenants")
	for _, name := range sortedKeys(c.Tenants) {
		errs = append(errs, validateName(tPath.Key(name), name)...)
		errs = append(errs, c.validateTenant(c.Tenants[name], tPath.Key(name))...)
	}

	pPath := field.NewPath("dedicatedPools")
	for _, name := range sortedKeys(c.DedicatedPools) {
		errs = append(errs, validateName(pPath.Key(name), name)...)
		errs = append(errs, c.validatePool(c.DedicatedPools[name], pPath.Key(name))...)
	}
	if c.DedicatedAppLabel != "" {
		errs = append(errs, validateLabelKey(field.NewPath("dedicatedAppLabel"), c.DedicatedAppLabel)...)
	}

	nsPath := field.NewPath("exemptNamespaces")
	seen := sets.New[string]()
	for i, ns := range c.ExemptNamespaces {
		for _, msg := range validation.IsDNS1123Label(ns) {
			errs = append(errs, field.Invalid(nsPath.Index(i), ns, msg))
		}
		if seen.Has(ns) {
			errs = append(errs, field.Duplicate(nsPath.Index(i), ns))
		}
		seen.Insert(ns)
	}

	errs = append(errs, validateNonEmptyUnique(c.Privileged.Users, field.NewPath("privileged", "users"))...)
	errs = append(errs, validateNonEmptyUnique(c.Privileged.Groups, field.NewPath("privileged", "groups"))...)
	errs = append(errs, validatePolicy(c.Policy, field.NewPath("policy"))...)
	return errs
}

func requiredOrUnsupported(p *field.Path, got, want string) *field.Error {
	if got == "" {
		return field.Required(p, fmt.Sprintf("must be %q", want))
	}
	return field.NotSupported(p, got, []string{want})
}

func (c *Config) validateOvercommit(p *field.Path) field.ErrorList {
	oc := c.Overcommit
	errs := validateRatios(oc.Default, p.Child("default"))
	for _, name := range sortedKeys(oc.HostGroups) {
		if _, ok := c.HostGroups[name]; !ok {
			errs = append(errs, field.NotFound(p.Child("hostGroups").Key(name), name))
		}
		errs = append(errs, validateRatios(oc.HostGroups[name], p.Child("hostGroups").Key(name))...)
	}
	for _, name := range sortedKeys(oc.Namespaces) {
		for _, msg := range validation.IsDNS1123Label(name) {
			errs = append(errs, field.Invalid(p.Child("namespaces").Key(name), name, msg))
		}
		errs = append(errs, validateRatios(oc.Namespaces[name], p.Child("namespaces").Key(name))...)
	}
	if q := oc.MinCPURequest; q != nil && q.Sign() < 0 {
		errs = append(errs, field.Invalid(p.Child("minCPURequest"), q.String(), "must be non-negative"))
	}
	if q := oc.MinMemoryRequest; q != nil && q.Sign() < 0 {
		errs = append(errs, field.Invalid(p.Child("minMemoryRequest"), q.String(), "must be non-negative"))
	}
	return errs
}

func validateRatios(r Ratios, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	check := func(v *float64, child string) {
		if v == nil || validRatio(*v) {
			return
		}
		msg := fmt.Sprintf("must be >= %g and <= %g", MinRatio, MaxRatio)
		if math.IsNaN(*v) || math.IsInf(*v, 0) {
			msg = "must be a finite number >= 1 and <= 100"
		}
		errs = append(errs, field.Invalid(p.Child(child), *v, msg))
	}
	check(r.CPU, "cpu")
	check(r.Memory, "memory")
	return errs
}

func validateAntiAffinity(a AntiAffinity, p *field.Path) field.ErrorList {
	errs := validateWeight(a.Weight, p.Child("weight"))
	if a.TopologyKey != "" {
		errs = append(errs, validateLabelKey(p.Child("topologyKey"), a.TopologyKey)...)
	}
	for i, set := range a.IdentityLabels {
		sp := p.Child("identityLabels").Index(i)
		if len(set) == 0 {
			errs = append(errs, field.Required(sp, "must list at least one label key"))
		}
		seen := sets.New[string]()
		for j, key := range set {
			errs = append(errs, validateLabelKey(sp.Index(j), key)...)
			if seen.Has(key) {
				errs = append(errs, field.Duplicate(sp.Index(j), key))
			}
			seen.Insert(key)
		}
	}
	for _, name := range sortedKeys(a.WorkloadClasses) {
		wp := p.Child("workloadClasses").Key(name)
		wc := a.WorkloadClasses[name]
		errs = append(errs, validateName(wp, name)...)
		errs = append(errs, validateWeight(wc.Weight, wp.Child("weight"))...)
		if wc.TopologyKey != "" {
			errs = append(errs, validateLabelKey(wp.Child("topologyKey"), wc.TopologyKey)...)
		}
	}
	return errs
}

func validateWeight(w *int32, p *field.Path) field.ErrorList {
	if w == nil || (*w >= MinWeight && *w <= MaxWeight) {
		return nil
	}
	return field.ErrorList{field.Invalid(p, *w, fmt.Sprintf("must be >= %d and <= %d", MinWeight, MaxWeight))}
}

// validateName checks a map key used as a label value (host group, tenant,
// pool and workload class names all appear in labels).
func validateName(p *field.Path, name string) field.ErrorList {
	if name == "" {
		return field.ErrorList{field.Required(p, "name must not be empty")}
	}
	var errs field.ErrorList
	for _, msg := range validation.IsValidLabelValue(name) {
		errs = append(errs, field.Invalid(p, name, msg))
	}
	return errs
}

func validateLabelKey(p *field.Path, key string) field.ErrorList {
	if key == "" {
		return field.ErrorList{field.Required(p, "must be a label key")}
	}
	var errs field.ErrorList
	for _, msg := range validation.IsQualifiedName(key) {
		errs = append(errs, field.Invalid(p, key, msg))
	}
	return errs
}

func validateLabelValue(p *field.Path, value string) field.ErrorList {
	var errs field.ErrorList
	for _, msg := range validation.IsValidLabelValue(value) {
		errs = append(errs, field.Invalid(p, value, msg))
	}
	return errs
}

// validateNodeSelector applies corev1 node selector semantics: In/NotIn
// need values, Exists/DoesNotExist take none, Gt/Lt take one integer.
func validateNodeSelector(s NodeSelector, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if len(s.MatchLabels) == 0 && len(s.MatchExpressions) == 0 {
		errs = append(errs, field.Required(p, "must have at least one requirement in matchLabels or matchExpressions"))
	}
	for _, k := range sortedKeys(s.MatchLabels) {
		errs = append(errs, validateLabelKey(p.Child("matchLabels").Key(k), k)...)
		errs = append(errs, validateLabelValue(p.Child("matchLabels").Key(k), s.MatchLabels[k])...)
	}
	for i, r := range s.MatchExpressions {
		rp := p.Child("matchExpressions").Index(i)
		errs = append(errs, validateLabelKey(rp.Child("key"), r.Key)...)
		switch r.Operator {
		case corev1.NodeSelectorOpIn, corev1.NodeSelectorOpNotIn:
			if len(r.Values) == 0 {
				errs = append(errs, field.Required(rp.Child("values"), "must be specified when operator is In or NotIn"))
			}
		case corev1.NodeSelectorOpExists, corev1.NodeSelectorOpDoesNotExist:
			if len(r.Values) > 0 {
				errs = append(errs, field.Forbidden(rp.Child("values"), "may not be specified when operator is Exists or DoesNotExist"))
			}
		case corev1.NodeSelectorOpGt, corev1.NodeSelectorOpLt:
			if len(r.Values) != 1 {
				errs = append(errs, field.Required(rp.Child("values"), "must be specified as a single value when operator is Gt or Lt"))
			} else if _, err := strconv.ParseInt(r.Values[0], 10, 64); err != nil {
				errs = append(errs, field.Invalid(rp.Child("values").Index(0), r.Values[0], "must be an integer when operator is Gt or Lt"))
			}
		default:
			errs = append(errs, field.NotSupported(rp.Child("operator"), r.Operator, []corev1.NodeSelectorOperator{
				corev1.NodeSelectorOpIn, corev1.NodeSelectorOpNotIn, corev1.NodeSelectorOpExists,
				corev1.NodeSelectorOpDoesNotExist, corev1.NodeSelectorOpGt, corev1.NodeSelectorOpLt,
			}))
			continue
		}
		for j, v := range r.Values {
			errs = append(errs, validateLabelValue(rp.Child("values").Index(j), v)...)
		}
	}
	return errs
}

func (c *Config) validateTenant(t Tenant, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	seen := sets.New[string]()
	for i, g := range t.HostGroups {
		if _, ok := c.HostGroups[g]; !ok {
			errs = append(errs, field.NotFound(p.Child("hostGroups").Index(i), g))
		}
		if seen.Has(g) {
			errs = append(errs, field.Duplicate(p.Child("hostGroups").Index(i), g))
		}
		seen.Insert(g)
	}
	if t.DefaultHostGroup != "" && !t.AllowsHostGroup(t.DefaultHostGroup) {
		errs = append(errs, field.Invalid(p.Child("defaultHostGroup"), t.DefaultHostGroup, "must be one of the tenant's hostGroups"))
	}
	if t.MaxGPUsPerPod != nil && *t.MaxGPUsPerPod < 0 {
		errs = append(errs, field.Invalid(p.Child("maxGPUsPerPod"), *t.MaxGPUsPerPod, "must not be negative"))
	}
	errs = append(errs, validateNonEmptyUnique(t.AllowedGPUModels, p.Child("allowedGPUModels"))...)
	for i, m := range t.AllowedGPUModels {
		errs = append(errs, validateLabelValue(p.Child("allowedGPUModels").Index(i), m)...)
	}
	errs = append(errs, validateNonEmptyUnique(t.AllowedRegistries, p.Child("allowedRegistries"))...)
	return errs
}

func validatePolicy(pol Policy, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, id := range sortedKeys(pol.Enforcement) {
		switch e := pol.Enforcement[id]; e {
		case EnforcementDeny, EnforcementWarn, EnforcementDryRun:
		default:
			errs = append(errs, field.NotSupported(p.Child("enforcement").Key(id), e, []Enforcement{EnforcementDeny, EnforcementWarn, EnforcementDryRun}))
		}
	}
	return errs
}

// validateNonEmptyUnique checks a list of free-form strings.
func validateNonEmptyUnique(items []string, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	seen := sets.New[string]()
	for i, s := range items {
		if s == "" {
			errs = append(errs, field.Required(p.Index(i), "must not be empty"))
		}
		if seen.Has(s) {
			errs = append(errs, field.Duplicate(p.Index(i), s))
		}
		seen.Insert(s)
	}
	return errs
}

func (c *Config) validatePool(pool DedicatedPool, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	switch _, ok := c.Tenants[pool.Tenant]; {
	case pool.Tenant == "":
		errs = append(errs, field.Required(p.Child("tenant"), "must name the owner tenant"))
	case !ok:
		errs = append(errs, field.NotFound(p.Child("tenant"), pool.Tenant))
	}
	errs = append(errs, validateLabelValue(p.Child("app"), pool.App)...)
	switch pool.Placement {
	case "", PlacementRequired, PlacementPreferred:
	default:
		errs = append(errs, field.NotSupported(p.Child("placement"), pool.Placement, []Placement{PlacementRequired, PlacementPreferred}))
	}
	return errs
}
