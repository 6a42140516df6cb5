// Package config is Harbormaster's one versioned configuration model, read
// from the ConfigMap key config.yaml and shared by the webhook, the
// scheduler, the CLI and the policies. Everything here is pure: parsing,
// defaulting, validation and lookups never do I/O.
package config

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/apimachinery/pkg/util/validation/field"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// Identity of the configuration document.
const (
	APIVersion   = "config.harbormaster.io/v1alpha1"
	Kind         = "HarbormasterConfig"
	ConfigMapKey = "config.yaml"
)

// Labels and annotations Harbormaster reads or writes.
const (
	// LabelTenant on a namespace names the tenant owning it.
	LabelTenant = "harbormaster.io/tenant"
	// LabelHostGroup on a pod picks one of its tenant's allowed host groups;
	// it is also the conventional node label of host groups.
	LabelHostGroup = "harbormaster.io/host-group"
	// LabelExempt="true" on a pod opts it out of every mutation.
	LabelExempt = "harbormaster.io/exempt"
	// LabelQoS="guaranteed" on a pod opts it out of overcommit.
	LabelQoS = "harbormaster.io/qos"
	// LabelWorkloadClass on a pod names its workload class.
	LabelWorkloadClass = "harbormaster.io/workload-class"
	// LabelDedicated is both the node label and the taint key (value = pool
	// name, effect NoSchedule) of dedicated pool nodes.
	LabelDedicated = "harbormaster.io/dedicated"
	// AnnotationOvercommit records the ratios applied to a pod and the
	// requests it arrived with.
	AnnotationOvercommit = "harbormaster.io/overcommit"
)

// Label values with a meaning.
const (
	ExemptValue   = "true"
	QoSGuaranteed = "guaranteed"
)

// Defaults.
const (
	DefaultRatio              = 1.0
	DefaultAntiAffinityWeight = int32(50)
	DefaultTopologyKey        = "kubernetes.io/hostname"
	DefaultDedicatedAppLabel  = "app.kubernetes.io/name"
	DefaultMinCPURequest      = "10m"
	DefaultMinMemoryRequest   = "16Mi"
)

// Bounds of overcommit ratios and scheduling weights.
const (
	MinRatio  = 1.0
	MaxRatio  = 100.0
	MinWeight = int32(1)
	MaxWeight = int32(100)
)

// Placement says how strictly an owner's pods go to its dedicated pool.
type Placement string

const (
	// PlacementRequired confines owner pods to the pool's nodes.
	PlacementRequired Placement = "required"
	// PlacementPreferred only prefers the pool's nodes.
	PlacementPreferred Placement = "preferred"
)

// DefaultIdentityLabels returns the default identity label sets, most
// specific first. A new slice on every call: callers may modify it.
func DefaultIdentityLabels() [][]string {
	return [][]string{
		{"app.kubernetes.io/name", "app.kubernetes.io/instance"},
		{"app.kubernetes.io/name"},
		{"app"},
		{"k8s-app"},
	}
}

// Config is the HarbormasterConfig document.
type Config struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`

	Overcommit   Overcommit   `json:"overcommit"`
	AntiAffinity AntiAffinity `json:"antiAffinity"`

	// HostGroups are named sets of nodes.
	HostGroups map[string]HostGroup `json:"hostGroups,omitempty"`
	// Tenants are keyed by the value of the namespace label LabelTenant.
	Tenants map[string]Tenant `json:"tenants,omitempty"`
	// DedicatedPools are keyed by pool name, the value of the LabelDedicated
	// node label and taint.
	DedicatedPools map[string]DedicatedPool `json:"dedicatedPools,omitempty"`
	// DedicatedAppLabel is the pod label a pool's App is matched against.
	DedicatedAppLabel string `json:"dedicatedAppLabel,omitempty"`

	// ExemptNamespaces are exempt in addition to kube-system, kube-public,
	// kube-node-lease and the webhook's own namespace.
	ExemptNamespaces []string   `json:"exemptNamespaces,omitempty"`
	Privileged       Privileged `json:"privileged"`
	Policy           Policy     `json:"policy"`
}

// Enforcement is what a policy violation does to an admission request.
type Enforcement string

const (
	// EnforcementDeny rejects the request with the rule's message.
	EnforcementDeny Enforcement = "deny"
	// EnforcementWarn admits it with an admission warning.
	EnforcementWarn Enforcement = "warn"
	// EnforcementDryRun admits it silently and only logs the decision.
	EnforcementDryRun Enforcement = "dryrun"
)

// Policy tunes the Rego governance policies.
type Policy struct {
	// Enforcement overrides, per rule id (e.g. "HM-HG-001"), the action a
	// rule declares in its METADATA.
	Enforcement map[string]Enforcement `json:"enforcement,omitempty"`
}

// Overcommit sets the limit:request ratios used to lower requests.
type Overcommit struct {
	Default Ratios `json:"default"`
	// HostGroups override Default per host group, per resource.
	HostGroups map[string]Ratios `json:"hostGroups,omitempty"`
	// Namespaces override host groups and Default, per resource.
	Namespaces map[string]Ratios `json:"namespaces,omitempty"`
	// MinCPURequest and MinMemoryRequest are floors for computed requests.
	MinCPURequest    *resource.Quantity `json:"minCPURequest,omitempty"`
	MinMemoryRequest *resource.Quantity `json:"minMemoryRequest,omitempty"`
}

// Ratios are limit:request ratios; nil falls through to the next level.
type Ratios struct {
	CPU    *float64 `json:"cpu,omitempty"`
	Memory *float64 `json:"memory,omitempty"`
}

// AntiAffinity configures the soft pod anti-affinity added to pods.
type AntiAffinity struct {
	// Enabled turns all anti-affinity mutation on or off (default true).
	Enabled     *bool  `json:"enabled,omitempty"`
	Weight      *int32 `json:"weight,omitempty"`
	TopologyKey string `json:"topologyKey,omitempty"`
	// IdentityLabels are tried in order; the first set whose keys are all
	// present on a pod identifies its replicas. An explicit empty list turns
	// identity anti-affinity off while keeping workload classes.
	IdentityLabels [][]string `json:"identityLabels,omitempty"`
	// WorkloadClasses are keyed by the value of LabelWorkloadClass.
	WorkloadClasses map[string]WorkloadClass `json:"workloadClasses,omitempty"`
}

// IsEnabled reports whether anti-affinity is on; unset means on.
func (a AntiAffinity) IsEnabled() bool { return a.Enabled == nil || *a.Enabled }

// WorkloadClass makes pods of the same class softly repel each other.
type WorkloadClass struct {
	// Weight defaults to antiAffinity.weight.
	Weight *int32 `json:"weight,omitempty"`
	// TopologyKey defaults to antiAffinity.topologyKey.
	TopologyKey string `json:"topologyKey,omitempty"`
}

// HostGroup is a named set of nodes.
type HostGroup struct {
	NodeSelector NodeSelector `json:"nodeSelector"`
}

// NodeSelector selects nodes by requirements that are all ANDed.
type NodeSelector struct {
	// MatchLabels become "In [value]" requirements.
	MatchLabels      map[string]string                `json:"matchLabels,omitempty"`
	MatchExpressions []corev1.NodeSelectorRequirement `json:"matchExpressions,omitempty"`
}

// Requirements returns the selector as node selector requirements:
// matchLabels first, sorted by key so the result is deterministic, then
// matchExpressions in order. The result is a new slice.
func (s NodeSelector) Requirements() []corev1.NodeSelectorRequirement {
	out := make([]corev1.NodeSelectorRequirement, 0, len(s.MatchLabels)+len(s.MatchExpressions))
	for _, k := range sortedKeys(s.MatchLabels) {
		out = append(out, corev1.NodeSelectorRequirement{Key: k, Operator: corev1.NodeSelectorOpIn, Values: []string{s.MatchLabels[k]}})
	}
	for _, r := range s.MatchExpressions {
		out = append(out, *r.DeepCopy())
	}
	return out
}

// Tenant is a set of namespaces sharing host groups and dedicated pools.
type Tenant struct {
	// HostGroups the tenant's pods may run on. None means no confinement.
	HostGroups []string `json:"hostGroups,omitempty"`
	// DefaultHostGroup is used when a pod picks no group; it must be one of
	// HostGroups. Unset means all of HostGroups.
	DefaultHostGroup string `json:"defaultHostGroup,omitempty"`

	// The fields below are enforced by the Rego policies, not by mutation.

	// MaxGPUsPerPod caps nvidia.com/gpu per pod; nil means no cap, 0 means
	// the tenant may not use GPUs.
	MaxGPUsPerPod *int64 `json:"maxGPUsPerPod,omitempty"`
	// AllowedGPUModels lists acceptable values of the nvidia.com/gpu.product
	// node label; empty allows every model.
	AllowedGPUModels []string `json:"allowedGPUModels,omitempty"`
	// AllowedRegistries are image reference prefixes (e.g.
	// "registry.example.com/team-a/"); empty allows every registry.
	AllowedRegistries []string `json:"allowedRegistries,omitempty"`
}

// AllowsHostGroup reports whether group is one of the tenant's groups.
func (t Tenant) AllowsHostGroup(group string) bool {
	for _, g := range t.HostGroups {
		if g == group {
			return true
		}
	}
	return false
}

// DedicatedPool is a set of nodes reserved for one tenant (or one app of
// it), labelled and tainted LabelDedicated=<pool>.
type DedicatedPool struct {
	Tenant string `json:"tenant"`
	// App restricts ownership to pods whose DedicatedAppLabel equals it.
	App       string    `json:"app,omitempty"`
	Placement Placement `json:"placement,omitempty"`
}

// Privileged are the users and groups allowed to exempt pods or ask for
// guaranteed QoS; policies enforce it.
type Privileged struct {
	Users  []string `json:"users,omitempty"`
	Groups []string `json:"groups,omitempty"`
}

// Parse decodes a config.yaml document strictly, defaults and validates it.
// The error lists every problem with its field path.
func Parse(data []byte) (*Config, error) {
	jsonData, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		if strings.Contains(err.Error(), "unsupported value") {
			return nil, fmt.Errorf("decoding %s: %w (NaN and infinities are not valid numbers)", ConfigMapKey, err)
		}
		return nil, fmt.Errorf("decoding %s: %w", ConfigMapKey, err)
	}
	c := &Config{}
	strictErrs, err := sigsjson.UnmarshalStrict(jsonData, c)
	if err != nil {
		// A quantity's own parse error does not say where it is.
		if qErrs := quantityErrors(jsonData); len(qErrs) > 0 {
			return nil, qErrs.ToAggregate()
		}
		return nil, fmt.Errorf("decoding %s: %w", ConfigMapKey, err)
	}
	var errs []error
	for _, e := range strictErrs {
		errs = append(errs, strictError(e))
	}
	c.SetDefaults()
	for _, e := range c.Validate() {
		errs = append(errs, e)
	}
	if len(errs) > 0 {
		return nil, utilerrors.NewAggregate(errs)
	}
	return c, nil
}

// strictError turns an unknown-field error of the decoder into a field
// error, so it reads like every other problem of the document.
func strictError(err error) error {
	fe, ok := err.(sigsjson.FieldError)
	if !ok || !strings.Contains(err.Error(), "unknown field") {
		return err
	}
	return &field.Error{Type: field.ErrorTypeForbidden, Field: fe.FieldPath(), BadValue: "", Detail: "unknown field"}
}

// quantityErrors finds unparsable quantities in the decoded document.
func quantityErrors(jsonData []byte) field.ErrorList {
	var doc struct {
		Overcommit map[string]any `json:"overcommit"`
	}
	if json.Unmarshal(jsonData, &doc) != nil {
		return nil
	}
	var errs field.ErrorList
	for _, name := range []string{"minCPURequest", "minMemoryRequest"} {
		s, ok := doc.Overcommit[name].(string)
		if !ok {
			continue
		}
		if _, err := resource.ParseQuantity(s); err != nil {
			errs = append(errs, field.Invalid(field.NewPath("overcommit", name), s, err.Error()))
		}
	}
	return errs
}

// Default returns the defaulted empty configuration.
func Default() *Config {
	c := &Config{APIVersion: APIVersion, Kind: Kind}
	c.SetDefaults()
	return c
}

// SetDefaults fills every unset field with its default.
func (c *Config) SetDefaults() {
	oc := &c.Overcommit
	if oc.Default.CPU == nil {
		oc.Default.CPU = ptrTo(DefaultRatio)
	}
	if oc.Default.Memory == nil {
		oc.Default.Memory = ptrTo(DefaultRatio)
	}
	if oc.MinCPURequest == nil {
		oc.MinCPURequest = ptrTo(resource.MustParse(DefaultMinCPURequest))
	}
	if oc.MinMemoryRequest == nil {
		oc.MinMemoryRequest = ptrTo(resource.MustParse(DefaultMinMemoryRequest))
	}

	aa := &c.AntiAffinity
	if aa.Enabled == nil {
		aa.Enabled = ptrTo(true)
	}
	if aa.Weight == nil {
		aa.Weight = ptrTo(DefaultAntiAffinityWeight)
	}
	if aa.TopologyKey == "" {
		aa.TopologyKey = DefaultTopologyKey
	}
	if aa.IdentityLabels == nil {
		aa.IdentityLabels = DefaultIdentityLabels()
	}
	for name, wc := range aa.WorkloadClasses {
		if wc.Weight == nil {
			wc.Weight = ptrTo(*aa.Weight)
		}
		if wc.TopologyKey == "" {
			wc.TopologyKey = aa.TopologyKey
		}
		aa.WorkloadClasses[name] = wc
	}

	for name, p := range c.DedicatedPools {
		if p.Placement == "" {
			p.Placement = PlacementRequired
			c.DedicatedPools[name] = p
		}
	}
	if c.DedicatedAppLabel == "" {
		c.DedicatedAppLabel = DefaultDedicatedAppLabel
	}
}

// TenantForNamespace returns the tenant named by the namespace label
// LabelTenant. ok is false when the label is missing or names no configured
// tenant; name is then the label's value (possibly empty) so callers can
// report it. t is a copy the caller may modify.
func (c *Config) TenantForNamespace(nsLabels map[string]string) (name string, t *Tenant, ok bool) {
	name = nsLabels[LabelTenant]
	if name == "" {
		return "", nil, false
	}
	tenant, found := c.Tenants[name]
	if !found {
		return name, nil, false
	}
	tenant.HostGroups = slices.Clone(tenant.HostGroups)
	return name, &tenant, true
}

// Ratios returns the cpu and memory ratios for a pod in namespace confined
// to hostGroup ("" for none): per resource, the namespace's ratio wins over
// the host group's, which wins over the default. Values outside [1, 100]
// (only possible in an unvalidated config) read as 1, never amplifying.
func (c *Config) Ratios(namespace, hostGroup string) (cpu, memory float64) {
	levels := [3]*Ratios{}
	if r, ok := c.Overcommit.Namespaces[namespace]; ok {
		levels[0] = &r
	}
	if hostGroup != "" {
		if r, ok := c.Overcommit.HostGroups[hostGroup]; ok {
			levels[1] = &r
		}
	}
	levels[2] = &c.Overcommit.Default
	cpu, memory = DefaultRatio, DefaultRatio
	cpuSet, memSet := false, false
	for _, r := range levels {
		if r == nil {
			continue
		}
		if !cpuSet && r.CPU != nil {
			cpu, cpuSet = *r.CPU, true
		}
		if !memSet && r.Memory != nil {
			memory, memSet = *r.Memory, true
		}
	}
	return sanitizeRatio(cpu), sanitizeRatio(memory)
}

func sanitizeRatio(r float64) float64 {
	if !validRatio(r) {
		return DefaultRatio
	}
	return r
}

func validRatio(r float64) bool {
	return !math.IsNaN(r) && !math.IsInf(r, 0) && r >= MinRatio && r <= MaxRatio
}

// IsExemptNamespace reports whether pods of ns are never mutated: the
// system namespaces, the webhook's own namespace and ExemptNamespaces.
func (c *Config) IsExemptNamespace(ns, ownNamespace string) bool {
	if ownNamespace != "" && ns == ownNamespace {
		return true
	}
	switch ns {
	case "kube-system", "kube-public", "kube-node-lease":
		return true
	}
	for _, n := range c.ExemptNamespaces {
		if ns == n {
			return true
		}
	}
	return false
}

// OwnedPools returns the names, sorted, of the dedicated pools owned by a
// pod of tenant with the given labels.
func (c *Config) OwnedPools(tenant string, podLabels map[string]string) []string {
	if tenant == "" {
		return nil
	}
	var owned []string
	for _, name := range sortedKeys(c.DedicatedPools) {
		p := c.DedicatedPools[name]
		if p.Tenant == tenant && (p.App == "" || podLabels[c.DedicatedAppLabel] == p.App) {
			owned = append(owned, name)
		}
	}
	return owned
}

func ptrTo[T any](v T) *T { return &v }

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
