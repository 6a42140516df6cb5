package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/open-policy-agent/opa/v1/ast"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/harbormaster-dev/harbormaster/pkg/config"
)

// Input is what the webhook knows about one admission request.
type Input struct {
	Request *admissionv1.AdmissionRequest
	// Namespace is the request's namespace with its labels; Name defaults
	// to Request.Namespace.
	Namespace Namespace
	// Config is the serving configuration; nil means config.Default().
	// Engine caches its AST form and its index per pointer, so a published
	// Config must not be modified (configstore never does).
	Config *config.Config
	// OwnNamespace is the webhook's namespace, always exempt.
	OwnNamespace string
}

// Namespace is a namespace's name and labels.
type Namespace struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels"`
}

// Document is the policies' input document. Marshalled as JSON it is
// what `input` holds in Rego, so it can be saved and replayed with
// `opa eval`, except input.facts: the engine derives those from the
// reviewed object while converting it (see requestFacts), for bundles that
// read them, and the policies compute the same without them.
type Document struct {
	Request         *admissionv1.AdmissionRequest `json:"request"`
	Namespace       Namespace                     `json:"namespace"`
	Tenant          *Tenant                       `json:"tenant"`
	ExemptNamespace bool                          `json:"exempt_namespace"`
	Config          *config.Config                `json:"config"`
	ConfigIndex     *ConfigIndex                  `json:"config_index"`
}

// Tenant is input.tenant. Lists are never null so policies can count them.
type Tenant struct {
	Name string `json:"name"`
	// Known is false when the namespace names a tenant the configuration
	// does not define; every other field is then empty.
	Known             bool     `json:"known"`
	HostGroups        []string `json:"hostGroups"`
	DefaultHostGroup  string   `json:"defaultHostGroup"`
	MaxGPUsPerPod     *int64   `json:"maxGPUsPerPod"`
	AllowedGPUModels  []string `json:"allowedGPUModels"`
	AllowedRegistries []string `json:"allowedRegistries"`
}

// BuildDocument computes the input document: the tenant and the namespace
// exemption come from the one configuration model, never from the policies.
func BuildDocument(in Input) (Document, error) {
	cfg := in.Config
	if cfg == nil {
		cfg = config.Default()
	}
	idx := newConfigIndex(cfg)
	return buildDocument(in, cfg, &idx)
}

// buildDocument is BuildDocument with the configuration resolved and its
// index already built (the engine caches both).
func buildDocument(in Input, cfg *config.Config, idx *ConfigIndex) (Document, error) {
	if in.Request == nil {
		return Document{}, errors.New("policy input: request is nil")
	}
	ns := in.Namespace
	if ns.Name == "" {
		ns.Name = in.Request.Namespace
	}
	if ns.Labels == nil {
		ns.Labels = map[string]string{}
	}
	return Document{
		Request:         in.Request,
		Namespace:       ns,
		Tenant:          tenantOf(cfg, ns.Labels),
		ExemptNamespace: ns.Name != "" && cfg.IsExemptNamespace(ns.Name, in.OwnNamespace),
		Config:          cfg,
		ConfigIndex:     idx,
	}, nil
}

func tenantOf(cfg *config.Config, nsLabels map[string]string) *Tenant {
	name, t, ok := cfg.TenantForNamespace(nsLabels)
	if name == "" {
		return nil
	}
	out := &Tenant{Name: name, Known: ok, HostGroups: []string{}, AllowedGPUModels: []string{}, AllowedRegistries: []string{}}
	if !ok {
		return out
	}
	out.HostGroups = append(out.HostGroups, t.HostGroups...)
	out.DefaultHostGroup = t.DefaultHostGroup
	if t.MaxGPUsPerPod != nil {
		n := *t.MaxGPUsPerPod
		out.MaxGPUsPerPod = &n
	}
	out.AllowedGPUModels = append(out.AllowedGPUModels, t.AllowedGPUModels...)
	out.AllowedRegistries = append(out.AllowedRegistries, t.AllowedRegistries...)
	return out
}

// value converts the document to an AST value without a JSON round trip
// of the whole: the reviewed objects go from their raw JSON straight to
// AST (decoded once, never through map[string]any), and cfg holds the
// configuration and its index as AST, converted once per configuration
// (see Engine.configTerms) and shared read-only between evaluations. With
// facts, it adds input.facts, derived from the converted object.
func (d Document) value(cfg configTerms, keys map[string]*ast.Term, opts inputOptions) (ast.Value, error) {
	req, err := requestValue(d.Request, keys, opts.omissionsFor(d.Request.Kind.Group, d.Request.Kind.Kind))
	if err != nil {
		return nil, err
	}
	tenant := ast.NullTerm()
	if t := d.Tenant; t != nil {
		maxGPUs := ast.NullTerm()
		if t.MaxGPUsPerPod != nil {
			maxGPUs = ast.NumberTerm(json.Number(strconv.FormatInt(*t.MaxGPUsPerPod, 10)))
		}
		tenant = ast.ObjectTerm(
			ast.Item(ast.InternedTerm("name"), ast.StringTerm(t.Name)),
			ast.Item(ast.InternedTerm("known"), ast.InternedTerm(t.Known)),
			ast.Item(ast.InternedTerm("hostGroups"), stringsTerm(t.HostGroups)),
			ast.Item(ast.InternedTerm("defaultHostGroup"), ast.StringTerm(t.DefaultHostGroup)),
			ast.Item(ast.InternedTerm("maxGPUsPerPod"), maxGPUs),
			ast.Item(ast.InternedTerm("allowedGPUModels"), stringsTerm(t.AllowedGPUModels)),
			ast.Item(ast.InternedTerm("allowedRegistries"), stringsTerm(t.AllowedRegistries)),
		)
	}
	labels := make([][2]*ast.Term, 0, len(d.Namespace.Labels))
	for k, v := range d.Namespace.Labels {
		labels = append(labels, ast.Item(ast.StringTerm(k), ast.StringTerm(v)))
	}
	reqTerm, exempt := ast.NewTerm(req), ast.InternedTerm(d.ExemptNamespace)
	items := make([][2]*ast.Term, 0, 7)
	if obj := req.Get(ast.InternedTerm("object")); obj != nil && opts.facts {
		if facts, podLabels := requestFacts(d.Request.Kind.Group, d.Request.Kind.Kind, obj.Value, keys); facts != nil {
			facts = append(facts, scopeFacts(d, cfg.indexDoc, podLabels)...)
			// What the facts were derived from, the very terms of this
			// input: the policies take the facts only while these are
			// input's (a rule may evaluate `with` another object).
			facts = append(facts,
				ast.Item(ast.InternedTerm("request"), reqTerm),
				ast.Item(ast.InternedTerm("tenant"), tenant),
				ast.Item(ast.InternedTerm("exempt_namespace"), exempt),
				ast.Item(ast.InternedTerm("config"), cfg.config),
			)
			items = append(items, ast.Item(ast.InternedTerm("facts"), ast.ObjectTerm(facts...)))
		}
	}
	return ast.NewObject(append(items,
		ast.Item(ast.InternedTerm("request"), reqTerm),
		ast.Item(ast.InternedTerm("namespace"), ast.ObjectTerm(
			ast.Item(ast.InternedTerm("name"), ast.StringTerm(d.Namespace.Name)),
			ast.Item(ast.InternedTerm("labels"), ast.ObjectTerm(labels...)),
		)),
		ast.Item(ast.InternedTerm("tenant"), tenant),
		ast.Item(ast.InternedTerm("exempt_namespace"), exempt),
		ast.Item(ast.InternedTerm("config"), cfg.config),
		ast.Item(ast.InternedTerm("config_index"), cfg.index),
	)...), nil
}

// stringsTerm is ss as a JSON array ([] for nil, as Tenant promises).
func stringsTerm(ss []string) *ast.Term {
	elems := make([]*ast.Term, len(ss))
	for i, s := range ss {
		elems[i] = ast.StringTerm(s)
	}
	return ast.ArrayTerm(elems...)
}

// requestValue converts the request with its objects' raw JSON as is,
// rather than re-encoding them inside the whole request.
func requestValue(req *admissionv1.AdmissionRequest, keys map[string]*ast.Term, omit *omissions) (ast.Object, error) {
	shallow := *req
	shallow.Object, shallow.OldObject = runtime.RawExtension{}, runtime.RawExtension{}
	raw, err := json.Marshal(&shallow)
	if err != nil {
		return nil, fmt.Errorf("policy input: encoding request: %w", err)
	}
	p := newJSONParser(keys)
	v, err := p.convert(raw, nil)
	if err != nil {
		return nil, fmt.Errorf("policy input: decoding request: %w", err)
	}
	obj, ok := v.(ast.Object)
	if !ok {
		return nil, fmt.Errorf("policy input: request encodes as %v, not an object", ast.TypeName(v))
	}
	object, err := rawExtensionValue(p, req.Object, omit)
	if err != nil {
		return nil, fmt.Errorf("policy input: request.object: %w", err)
	}
	oldObject, err := rawExtensionValue(p, req.OldObject, omit)
	if err != nil {
		return nil, fmt.Errorf("policy input: request.oldObject: %w", err)
	}
	obj.Insert(ast.InternedTerm("object"), ast.NewTerm(object))
	obj.Insert(ast.InternedTerm("oldObject"), ast.NewTerm(oldObject))
	return obj, nil
}

func rawExtensionValue(p *jsonParser, ext runtime.RawExtension, omit *omissions) (ast.Value, error) {
	raw := ext.Raw
	if len(raw) == 0 {
		if ext.Object == nil {
			return ast.Null{}, nil
		}
		var err error
		if raw, err = json.Marshal(ext.Object); err != nil {
			return nil, err
		}
	}
	return p.convert(raw, omit)
}

// inputOptions are what a bundle needs in its input beyond the document.
type inputOptions struct {
	// facts derives input.facts.
	facts bool
	// omitPods and omitOthers are the members left out of the reviewed
	// objects of Pods and of every other kind (see omit.go); nil keeps
	// everything.
	omitPods, omitOthers *omissions
}

func (o inputOptions) omissionsFor(group, kind string) *omissions {
	if group == "" && kind == "Pod" {
		return o.omitPods
	}
	return o.omitOthers
}

// configTerms are the AST forms of one configuration, input.config and
// input.config_index, with the index itself for the Document.
type configTerms struct {
	config   *ast.Term
	index    *ast.Term
	indexDoc *ConfigIndex
}

// newConfigTerms converts cfg. Evaluations only read the result, so one
// conversion serves them all.
func newConfigTerms(cfg *config.Config) (configTerms, error) {
	raw, err := json.Marshal(cfg)
	if err != nil {
		return configTerms{}, fmt.Errorf("policy input: encoding config: %w", err)
	}
	v, err := jsonValue(raw)
	if err != nil {
		return configTerms{}, fmt.Errorf("policy input: decoding config: %w", err)
	}
	idx := newConfigIndex(cfg)
	if raw, err = json.Marshal(idx); err != nil {
		return configTerms{}, fmt.Errorf("policy input: encoding config index: %w", err)
	}
	iv, err := jsonValue(raw)
	if err != nil {
		return configTerms{}, fmt.Errorf("policy input: decoding config index: %w", err)
	}
	return configTerms{config: ast.NewTerm(v), index: ast.NewTerm(iv), indexDoc: &idx}, nil
}

// ConfigIndex is input.config_index: lookups into input.config that the
// policies would otherwise compute by scanning every pool or host group of
// the configuration on every request. It is derived from the configuration
// alone, so the engine builds it once per configuration.
type ConfigIndex struct {
	// PoolsByTenant lists, per tenant, the names of its dedicated pools,
	// sorted.
	PoolsByTenant map[string][]string `json:"pools_by_tenant"`
	// HostGroupsByLabel lists, per node label key and value, the host
	// groups whose selector requires that pair (a matchLabels entry, or a
	// value of an In expression), sorted.
	HostGroupsByLabel map[string]map[string][]string `json:"host_groups_by_label"`
	// HostGroupRequirements lists, per host group, its selector's
	// requirements: matchLabels as In [value], then matchExpressions, each
	// with its values sorted and deduplicated, without repeats.
	HostGroupRequirements map[string][]Requirement `json:"host_group_requirements"`
}

// Requirement is a node selector requirement in a comparable form.
type Requirement struct {
	Key      string   `json:"key"`
	Operator string   `json:"operator"`
	Values   []string `json:"values"`
}

func newConfigIndex(cfg *config.Config) ConfigIndex {
	idx := ConfigIndex{
		PoolsByTenant:         map[string][]string{},
		HostGroupsByLabel:     map[string]map[string][]string{},
		HostGroupRequirements: make(map[string][]Requirement, len(cfg.HostGroups)),
	}
	for name, pool := range cfg.DedicatedPools {
		idx.PoolsByTenant[pool.Tenant] = append(idx.PoolsByTenant[pool.Tenant], name)
	}
	add := func(key, value, group string) {
		values := idx.HostGroupsByLabel[key]
		if values == nil {
			values = map[string][]string{}
			idx.HostGroupsByLabel[key] = values
		}
		values[value] = append(values[value], group)
	}
	for name, g := range cfg.HostGroups {
		reqs := []Requirement{}
		for _, r := range g.NodeSelector.Requirements() {
			if r.Operator == corev1.NodeSelectorOpIn {
				for _, v := range r.Values {
					add(r.Key, v, name)
				}
			}
			values := slices.Compact(slices.Sorted(slices.Values(r.Values)))
			req := Requirement{Key: r.Key, Operator: string(r.Operator), Values: append([]string{}, values...)}
			if !slices.ContainsFunc(reqs, func(o Requirement) bool {
				return o.Key == req.Key && o.Operator == req.Operator && slices.Equal(o.Values, req.Values)
			}) {
				reqs = append(reqs, req)
			}
		}
		idx.HostGroupRequirements[name] = reqs
	}
	for _, names := range idx.PoolsByTenant {
		slices.Sort(names)
	}
	for _, values := range idx.HostGroupsByLabel {
		for v, groups := range values {
			// A group may list a pair twice (matchLabels and In).
			slices.Sort(groups)
			values[v] = slices.Compact(groups)
		}
	}
	return idx
}
