// Package webhook adapts Harbormaster's pure admission rules (pkg/mutation)
// to Kubernetes admission: it decodes requests, looks up the namespace and
// its LimitRanges from an informer cache, calls the rules with the live
// configuration and answers with a minimal JSON patch.
package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/go-logr/logr"
	"gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/harbormaster-dev/harbormaster/pkg/configstore"
	"github.com/harbormaster-dev/harbormaster/pkg/mutation"
)

// Names of the webhooks, used in metrics and logs.
const (
	WebhookPods       = "pods"
	WebhookDaemonSets = "daemonsets"
	WebhookConfig     = "config"
	WebhookPolicy     = "policy"
)

// ClusterView answers the read-only questions admission asks about the
// cluster. No admission ever writes to the API server.
type ClusterView interface {
	NamespaceLabels(ctx context.Context, name string) (map[string]string, error)
	LimitRanges(ctx context.Context, namespace string) ([]corev1.LimitRange, error)
}

// PodMutator applies the mutation rules to Pods at CREATE and to in-place
// resizes (UPDATE of pods/resize).
type PodMutator struct {
	Store        *configstore.Store
	View         ClusterView
	OwnNamespace string
	Metrics      *Metrics
	Decoder      admission.Decoder
	Log          logr.Logger
}

var _ admission.Handler = &PodMutator{}

// Handle implements admission.Handler.
func (m *PodMutator) Handle(ctx context.Context, req admission.Request) admission.Response {
	start := time.Now()
	resp, result := m.handle(ctx, req)
	observe(m.Metrics, m.Log, WebhookPods, req, resp, result, time.Since(start))
	return resp
}

func (m *PodMutator) handle(ctx context.Context, req admission.Request) (admission.Response, *mutation.Result) {
	if req.Kind.Kind != "Pod" {
		return admission.Allowed("not a pod"), nil
	}
	resize := req.Operation == admissionv1.Update && req.SubResource == "resize"
	if req.Operation != admissionv1.Create && !resize {
		return admission.Allowed("only pod creation and resize are mutated"), nil
	}
	pod, err := decodePod(req.Object.Raw)
	if err != nil {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("decoding pod: %w", err)), nil
	}
	in, err := m.input(ctx, req.Namespace)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err), nil
	}
	cfg := m.Store.Current().Config
	var result mutation.Result
	var resp admission.Response
	if resize {
		old, err := decodePod(req.OldObject.Raw)
		if err != nil {
			return admission.Errored(http.StatusBadRequest, fmt.Errorf("decoding old pod: %w", err)), nil
		}
		result = mutation.MutatePodResize(cfg, old, pod, in)
		resp, err = patchResponse(pod, result.Pod)
		if err != nil {
			return admission.Errored(http.StatusInternalServerError, err), &result
		}
	} else {
		// The handler owns the pod it decoded: the rules write into it,
		// and the patch is taken against its fields as they were.
		original := mutation.WritableFieldsOf(pod)
		result = mutation.MutatePodOwned(cfg, pod, in)
		resp, err = fieldPatchResponse(original, result.Pod)
		if err != nil {
			return admission.Errored(http.StatusInternalServerError, err), &result
		}
	}
	return resp.WithWarnings(result.Warnings...), &result
}

func (m *PodMutator) input(ctx context.Context, namespace string) (mutation.Input, error) {
	nsLabels, err := m.View.NamespaceLabels(ctx, namespace)
	if err != nil {
		// Without the namespace we cannot tell its tenant; guessing "no
		// tenant" would let a tenant's pod escape its host groups.
		return mutation.Input{}, fmt.Errorf("reading namespace %q: %w", namespace, err)
	}
	limitRanges, err := m.View.LimitRanges(ctx, namespace)
	if err != nil {
		return mutation.Input{}, fmt.Errorf("reading LimitRanges of namespace %q: %w", namespace, err)
	}
	return mutation.Input{
		Namespace:       namespace,
		NamespaceLabels: nsLabels,
		OwnNamespace:    m.OwnNamespace,
		LimitRanges:     limitRanges,
	}, nil
}

// DaemonSetMutator confines the pod template of tenants' DaemonSets to their
// host groups, so the DaemonSet controller only creates pods on nodes where
// they can run instead of leaving pods pending forever elsewhere.
type DaemonSetMutator struct {
	Store        *configstore.Store
	View         ClusterView
	OwnNamespace string
	Metrics      *Metrics
	Decoder      admission.Decoder
	Log          logr.Logger
}

var _ admission.Handler = &DaemonSetMutator{}

// Handle implements admission.Handler.
func (m *DaemonSetMutator) Handle(ctx context.Context, req admission.Request) admission.Response {
	start := time.Now()
	resp, result := m.handle(ctx, req)
	observe(m.Metrics, m.Log, WebhookDaemonSets, req, resp, result, time.Since(start))
	return resp
}

func (m *DaemonSetMutator) handle(ctx context.Context, req admission.Request) (admission.Response, *mutation.Result) {
	if req.Operation != admissionv1.Create && req.Operation != admissionv1.Update {
		return admission.Allowed(""), nil
	}
	ds := &appsv1.DaemonSet{}
	if err := m.Decoder.Decode(req, ds); err != nil {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("decoding daemonset: %w", err)), nil
	}
	nsLabels, err := m.View.NamespaceLabels(ctx, req.Namespace)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, fmt.Errorf("reading namespace %q: %w", req.Namespace, err)), nil
	}
	in := mutation.Input{Namespace: req.Namespace, NamespaceLabels: nsLabels, OwnNamespace: m.OwnNamespace}
	tmpl, applied := mutation.MutatePodTemplate(m.Store.Current().Config, &ds.Spec.Template, in)
	mutated := ds.DeepCopy()
	mutated.Spec.Template = *tmpl
	resp, err := patchResponse(ds, mutated)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err), nil
	}
	return resp, &mutation.Result{Applied: applied}
}

// patchResponse answers with JSONPatch's patch from original to mutated;
// an unchanged object yields no patch at all. The patch is encoded here, by
// encodePatch (controller-runtime's Response.Complete only encodes Patches,
// which stays empty).
func patchResponse[T any](original, mutated *T) (admission.Response, error) {
	ops, err := JSONPatch(original, mutated)
	if err != nil {
		return admission.Response{}, err
	}
	return opsResponse(ops)
}

// opsResponse allows with ops as the JSON patch (none: no patch).
func opsResponse(ops []jsonpatch.Operation) (admission.Response, error) {
	if len(ops) == 0 {
		return admission.Allowed(""), nil
	}
	raw, err := encodePatch(ops)
	if err != nil {
		return admission.Response{}, fmt.Errorf("encoding patch: %w", err)
	}
	resp := admission.Allowed("")
	patchType := admissionv1.PatchTypeJSONPatch
	resp.Patch, resp.PatchType = raw, &patchType
	return resp, nil
}

// fieldPatchResponse is patchResponse for a pod mutated in place, from its
// writable fields as they were.
func fieldPatchResponse(original mutation.WritableFields, mutated *corev1.Pod) (admission.Response, error) {
	ops, ok := podPatch(original, mutated)
	if !ok {
		// The rules never add or remove containers (FuzzMutatePod).
		return admission.Response{}, errors.New("the mutation changed the pod's containers")
	}
	return opsResponse(ops)
}

// observe records metrics and a structured log line for one admission.
func observe(m *Metrics, log logr.Logger, webhook string, req admission.Request, resp admission.Response, result *mutation.Result, took time.Duration) {
	outcome := "unchanged"
	switch {
	case !resp.Allowed && resp.Result != nil && resp.Result.Code >= 500:
		outcome = "error"
	case !resp.Allowed && resp.Result != nil && resp.Result.Code == http.StatusBadRequest:
		outcome = "error"
	case !resp.Allowed:
		outcome = "denied"
	case result != nil && result.Skipped != "":
		outcome = "skipped"
	case len(resp.Patch) > 0 || len(resp.Patches) > 0:
		outcome = "patched"
	}
	if m != nil {
		m.Requests.WithLabelValues(webhook, outcome).Inc()
		m.Duration.WithLabelValues(webhook).Observe(took.Seconds())
		if result != nil && outcome == "patched" {
			for _, rule := range result.Applied {
				m.Rules.WithLabelValues(webhook, rule).Inc()
			}
		}
	}
	// The log line needs the object's generated name, which costs a second
	// decode of the object: only pay for it when the line is written.
	if outcome != "error" && !log.V(2).Enabled() {
		return
	}
	name := req.Name
	if name == "" {
		name = objectGenerateName(req)
	}
	kv := []any{"webhook", webhook, "object", klog.KRef(req.Namespace, name), "operation", req.Operation,
		"subResource", req.SubResource, "outcome", outcome, "dryRun", req.DryRun != nil && *req.DryRun, "latency", took}
	if result != nil {
		kv = append(kv, "rules", result.Applied, "skipped", result.Skipped)
	}
	if outcome == "error" {
		msg := ""
		if resp.Result != nil {
			msg = resp.Result.Message
		}
		log.Error(errors.New(msg), "Admission failed", kv...)
		return
	}
	log.V(2).Info("Admission", kv...)
}

// objectGenerateName reads metadata.generateName from the raw object: pods
// of controllers have no name yet at admission.
func objectGenerateName(req admission.Request) string {
	var meta struct {
		Metadata struct {
			GenerateName string `json:"generateName"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(req.Object.Raw, &meta); err != nil || meta.Metadata.GenerateName == "" {
		return ""
	}
	return meta.Metadata.GenerateName + "*"
}
