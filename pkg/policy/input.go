package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/open-policy-agent/opa/v1/ast"
	admissionv1 "k8s.io/api/admission/v1"
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

// value converts the document to an AST value without a JSON round trip
// of the whole. It is a lazy object: a pod is a few KiB of JSON of which
// policies read a handful of fields, and only those get converted. A lazy
// object caches conversions, so it is not safe for concurrent use: each
// evaluation builds its own. cfg is the config's JSON form (see
// configNative), shared read-only between evaluations.
func (d Document) value(cfg any) (ast.Value, error) {
	req, err := requestNative(d.Request)
	if err != nil {
		return nil, err
	}
	var tenant any
	if t := d.Tenant; t != nil {
		var maxGPUs any
		if t.MaxGPUsPerPod != nil {
			maxGPUs = json.Number(strconv.FormatInt(*t.MaxGPUsPerPod, 10))
		}
		tenant = map[string]any{
			"name":              t.Name,
			"known":             t.Known,
			"hostGroups":        stringsNative(t.HostGroups),
			"defaultHostGroup":  t.DefaultHostGroup,
			"maxGPUsPerPod":     maxGPUs,
			"allowedGPUModels":  stringsNative(t.AllowedGPUModels),
			"allowedRegistries": stringsNative(t.AllowedRegistries),
		}
	}
	labels := make(map[string]any, len(d.Namespace.Labels))
	for k, v := range d.Namespace.Labels {
		labels[k] = v
	}
	return ast.LazyObject(map[string]any{
		"request":          req,
		"namespace":        map[string]any{"name": d.Namespace.Name, "labels": labels},
		"tenant":           tenant,
		"exempt_namespace": d.ExemptNamespace,
		"config":           cfg,
	}), nil
}

// stringsNative is ss as JSON decoding would produce it.
func stringsNative(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// requestNative decodes the request with its objects' raw JSON as is,
// rather than re-encoding them inside the whole request.
func requestNative(req *admissionv1.AdmissionRequest) (map[string]any, error) {
	shallow := *req
	shallow.Object, shallow.OldObject = runtime.RawExtension{}, runtime.RawExtension{}
	raw, err := json.Marshal(&shallow)
	if err != nil {
		return nil, fmt.Errorf("policy input: encoding request: %w", err)
	}
	var m map[string]any
	if err := decodeJSON(raw, &m); err != nil {
		return nil, fmt.Errorf("policy input: decoding request: %w", err)
	}
	if m["object"], err = rawExtensionValue(req.Object); err != nil {
		return nil, fmt.Errorf("policy input: request.object: %w", err)
	}
	if m["oldObject"], err = rawExtensionValue(req.OldObject); err != nil {
		return nil, fmt.Errorf("policy input: request.oldObject: %w", err)
	}
	return m, nil
}

func rawExtensionValue(ext runtime.RawExtension) (any, error) {
	raw := ext.Raw
	if len(raw) == 0 {
		if ext.Object == nil {
			return nil, nil
		}
		var err error
		if raw, err = json.Marshal(ext.Object); err != nil {
			return nil, err
		}
	}
	var v any
	err := decodeJSON(raw, &v)
	return v, err
}

// decodeJSON keeps numbers as json.Number, which OPA converts exactly.
func decodeJSON(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	return dec.Decode(v)
}

// configNative is the configuration as decoded JSON. Evaluations only
// read it, so one copy serves them all.
func configNative(cfg *config.Config) (any, error) {
	raw, err := json.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("policy input: encoding config: %w", err)
	}
	var v any
	if err := decodeJSON(raw, &v); err != nil {
		return nil, fmt.Errorf("policy input: decoding config: %w", err)
	}
	return v, nil
}
