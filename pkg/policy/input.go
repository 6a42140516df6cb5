package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/open-policy-agent/opa/v1/ast"
	admissionv1 "k8s.io/api/admission/v1"

	"github.com/harbormaster-dev/harbormaster/pkg/config"
)

// Input is what the webhook knows about one admission request.
type Input struct {
	Request *admissionv1.AdmissionRequest
	// Namespace is the request's namespace with its labels; Name defaults
	// to Request.Namespace.
	Namespace Namespace
	// Config is the serving configuration; nil means config.Default().
	// Engine caches its JSON form per pointer, so a published Config must
	// not be modified (configstore never does).
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
// exactly what `input` holds in Rego, so it can be saved and replayed with
// `opa eval`.
type Document struct {
	Request         *admissionv1.AdmissionRequest `json:"request"`
	Namespace       Namespace                     `json:"namespace"`
	Tenant          *Tenant                       `json:"tenant"`
	ExemptNamespace bool                          `json:"exempt_namespace"`
	Config          *config.Config                `json:"config"`
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
	if in.Request == nil {
		return Document{}, errors.New("policy input: request is nil")
	}
	cfg := in.Config
	if cfg == nil {
		cfg = config.Default()
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

// value converts the document to an AST value, reusing cfgValue (the
// already converted config) because the config is most of the bytes and
// changes rarely.
func (d Document) value(cfgValue ast.Value) (ast.Value, error) {
	// Everything but the config, in one go.
	raw, err := json.Marshal(struct {
		Request         *admissionv1.AdmissionRequest `json:"request"`
		Namespace       Namespace                     `json:"namespace"`
		Tenant          *Tenant                       `json:"tenant"`
		ExemptNamespace bool                          `json:"exempt_namespace"`
	}{d.Request, d.Namespace, d.Tenant, d.ExemptNamespace})
	if err != nil {
		return nil, fmt.Errorf("policy input: encoding request: %w", err)
	}
	v, err := ast.ValueFromReader(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("policy input: decoding request: %w", err)
	}
	obj, ok := v.(ast.Object)
	if !ok {
		return nil, fmt.Errorf("policy input: document is %T, not an object", v)
	}
	obj.Insert(ast.InternedTerm("config"), ast.NewTerm(cfgValue))
	return obj, nil
}

// configValue converts a configuration to an AST value.
func configValue(cfg *config.Config) (ast.Value, error) {
	raw, err := json.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("policy input: encoding config: %w", err)
	}
	v, err := ast.ValueFromReader(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("policy input: decoding config: %w", err)
	}
	return v, nil
}
