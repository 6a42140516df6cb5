// Package explain answers, offline, "what would Harbormaster do to this
// object?": the mutation the webhook would apply (its JSON patch, the
// requests it lowers, the placement it adds) and every policy decision on
// the mutated object, in the order the API server runs them: defaulting,
// mutating webhooks, then validating webhooks. It is a pure function of the
// object, its namespace, the configuration, the policy bundle and the
// requesting user; the harbormaster CLI reads those from files.
package explain

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/harbormaster-dev/harbormaster/pkg/config"
	"github.com/harbormaster-dev/harbormaster/pkg/mutation"
	"github.com/harbormaster-dev/harbormaster/pkg/policy"
	"github.com/harbormaster-dev/harbormaster/pkg/webhook"
)

// DefaultOwnNamespace is the webhook's namespace in manifests/; it is
// always exempt.
const DefaultOwnNamespace = "harbormaster-system"

// requestUID marks the synthetic admission requests explain evaluates.
const requestUID = "harbormaster-explain"

// Input is the object as a client would send it and the cluster state it
// would meet. Nothing here is read from the cluster.
type Input struct {
	// Object is a typed Pod, Deployment, ReplicaSet, StatefulSet, DaemonSet,
	// Job or CronJob. It is not modified.
	Object runtime.Object
	// Namespace is the request's namespace; an empty name means the
	// object's metadata.namespace, else "default".
	Namespace policy.Namespace
	// LimitRanges of the namespace; the webhook raises computed requests to
	// their minimums.
	LimitRanges []corev1.LimitRange
	// Config is the HarbormasterConfig; nil means config.Default().
	Config *config.Config
	// Bundle is the policy bundle the webhook serves.
	Bundle *policy.Bundle
	// User is the requester as the API server authenticated it.
	User authenticationv1.UserInfo
	// Operation is CREATE (empty means CREATE) or UPDATE. An UPDATE is
	// judged without an old object, so every rule sees every field as new.
	Operation admissionv1.Operation
	// OwnNamespace is the webhook's namespace; empty means
	// DefaultOwnNamespace.
	OwnNamespace string
}

// Report is what explain found.
type Report struct {
	Object    ObjectRef                 `json:"object"`
	Operation admissionv1.Operation     `json:"operation"`
	User      authenticationv1.UserInfo `json:"user"`
	Namespace policy.Namespace          `json:"namespace"`
	// Tenant is the tenant the namespace label names ("" for none).
	Tenant   string   `json:"tenant,omitempty"`
	Mutation Mutation `json:"mutation"`
	Decision Decision `json:"decision"`
	// Admitted is whether the API server would accept the request.
	Admitted bool `json:"admitted"`
}

// ObjectRef names the explained object.
type ObjectRef struct {
	APIVersion   string `json:"apiVersion"`
	Kind         string `json:"kind"`
	Namespace    string `json:"namespace"`
	Name         string `json:"name,omitempty"`
	GenerateName string `json:"generateName,omitempty"`
}

// String is kind namespace/name, as a reader looks for it.
func (r ObjectRef) String() string {
	name := r.Name
	if name == "" && r.GenerateName != "" {
		name = r.GenerateName + "*"
	}
	return r.Kind + " " + r.Namespace + "/" + name
}

// Mutation is what the mutating webhook would do.
type Mutation struct {
	// Endpoint is the webhook path that receives the request, "" when no
	// mutating webhook does.
	Endpoint string `json:"endpoint,omitempty"`
	// Note says why nothing is mutated when Endpoint is empty.
	Note string `json:"note,omitempty"`
	// Skipped is the reason the object is exempt (see mutation.Skip*).
	Skipped  string   `json:"skipped,omitempty"`
	Applied  []string `json:"applied,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
	// Patch is the JSON patch the webhook would answer with.
	Patch []jsonpatch.Operation `json:"patch"`
	// Resources are the requests before and after, per container; pods
	// only (templates are not overcommitted).
	Resources []ContainerResources `json:"resources,omitempty"`
	// Overcommit are the ratios recorded in the harbormaster.io/overcommit
	// annotation, nil when none applied.
	Overcommit *mutation.RecordedRatios `json:"overcommit,omitempty"`
	// Placement is the scheduling constraints of the mutated pod (or
	// template).
	Placement *Placement `json:"placement,omitempty"`
}

// ContainerResources are one container's requests before and after the
// mutation; Container is "" for pod-level spec.resources.
type ContainerResources struct {
	Container      string              `json:"container"`
	Init           bool                `json:"init,omitempty"`
	Limits         corev1.ResourceList `json:"limits,omitempty"`
	RequestsBefore corev1.ResourceList `json:"requestsBefore,omitempty"`
	RequestsAfter  corev1.ResourceList `json:"requestsAfter,omitempty"`
	Changed        bool                `json:"changed"`
}

// Decision is the validating webhook's verdict on the mutated object.
type Decision struct {
	BundleRevision  string             `json:"bundleRevision"`
	Result          policy.Result      `json:"result"`
	ExemptNamespace bool               `json:"exemptNamespace"`
	Violations      []policy.Violation `json:"violations"`
	// Error is set when the policies could not judge the request; the
	// webhook then denies tenant requests and admits the others.
	Error string `json:"error,omitempty"`
}

// Explain runs defaulting, the mutating webhook and the validating webhook
// on in.Object as the API server would for one admission request.
func Explain(ctx context.Context, in Input) (Report, error) {
	if in.Object == nil {
		return Report{}, errors.New("explain: no object")
	}
	if in.Bundle == nil {
		return Report{}, errors.New("explain: no policy bundle")
	}
	cfg := in.Config
	if cfg == nil {
		cfg = config.Default()
	}
	op := in.Operation
	if op == "" {
		op = admissionv1.Create
	}
	if op != admissionv1.Create && op != admissionv1.Update {
		return Report{}, fmt.Errorf("operation %q: must be CREATE or UPDATE", op)
	}
	own := in.OwnNamespace
	if own == "" {
		own = DefaultOwnNamespace
	}

	obj, kind, err := prepare(in.Object, in.Namespace.Name)
	if err != nil {
		return Report{}, err
	}
	meta, err := metaOf(obj)
	if err != nil {
		return Report{}, err
	}
	ns := policy.Namespace{Name: meta.GetNamespace(), Labels: in.Namespace.Labels}
	if ns.Labels == nil {
		ns.Labels = map[string]string{}
	}
	tenant, _, _ := cfg.TenantForNamespace(ns.Labels)
	report := Report{
		Object: ObjectRef{
			APIVersion: kind.GroupVersion().String(), Kind: kind.Kind,
			Namespace: ns.Name, Name: meta.GetName(), GenerateName: meta.GetGenerateName(),
		},
		Operation: op,
		User:      in.User,
		Namespace: ns,
		Tenant:    tenant,
	}

	mutated, mut, err := mutate(cfg, obj, op, mutation.Input{
		Namespace: ns.Name, NamespaceLabels: ns.Labels, OwnNamespace: own, LimitRanges: in.LimitRanges,
	})
	if err != nil {
		return Report{}, err
	}
	if mut.Patch == nil {
		mut.Patch = []jsonpatch.Operation{} // "patch": [] in JSON, never null
	}
	report.Mutation = mut

	report.Decision, err = decide(ctx, in.Bundle, cfg, mutated, kind, op, ns, own, in.User)
	if err != nil {
		return Report{}, err
	}
	switch {
	case report.Decision.Error != "":
		// The validating webhook's own failure handling: tenant requests
		// nobody could judge are refused, the rest admitted.
		report.Admitted = ns.Labels[config.LabelTenant] == ""
	default:
		report.Admitted = report.Decision.Result != policy.ResultDeny
	}
	return report, nil
}

// prepare copies the object, applies the API server's defaulting and sets
// the request's namespace, as the API server does before admission.
func prepare(in runtime.Object, namespace string) (runtime.Object, schema.GroupVersionKind, error) {
	obj := in.DeepCopyObject()
	kind, err := reviewedKind(obj)
	if err != nil {
		return nil, kind, err
	}
	setDefaults(obj)
	meta, err := metaOf(obj)
	if err != nil {
		return nil, kind, err
	}
	switch {
	case namespace == "" && meta.GetNamespace() == "":
		namespace = metav1.NamespaceDefault
	case namespace == "":
		namespace = meta.GetNamespace()
	case meta.GetNamespace() != "" && meta.GetNamespace() != namespace:
		// The API server refuses this request before admission.
		return nil, kind, fmt.Errorf("metadata.namespace: %q differs from the request's namespace %q", meta.GetNamespace(), namespace)
	}
	meta.SetNamespace(namespace)
	obj.GetObjectKind().SetGroupVersionKind(kind)
	return obj, kind, nil
}

// reviewedKind returns the group, version and kind of the objects the
// Harbormaster webhooks review.
func reviewedKind(obj runtime.Object) (schema.GroupVersionKind, error) {
	switch obj.(type) {
	case *corev1.Pod:
		return corev1.SchemeGroupVersion.WithKind("Pod"), nil
	case *appsv1.Deployment:
		return appsv1.SchemeGroupVersion.WithKind("Deployment"), nil
	case *appsv1.ReplicaSet:
		return appsv1.SchemeGroupVersion.WithKind("ReplicaSet"), nil
	case *appsv1.StatefulSet:
		return appsv1.SchemeGroupVersion.WithKind("StatefulSet"), nil
	case *appsv1.DaemonSet:
		return appsv1.SchemeGroupVersion.WithKind("DaemonSet"), nil
	case *batchv1.Job:
		return batchv1.SchemeGroupVersion.WithKind("Job"), nil
	case *batchv1.CronJob:
		return batchv1.SchemeGroupVersion.WithKind("CronJob"), nil
	}
	return schema.GroupVersionKind{}, fmt.Errorf("kind: %T is not reviewed by Harbormaster (%s)", obj, ReviewedKinds)
}

// ReviewedKinds lists the kinds explain accepts, for error messages.
const ReviewedKinds = "Pod, Deployment, ReplicaSet, StatefulSet, DaemonSet, Job, CronJob"

// resourceOf is the plural resource the API server puts in the request.
func resourceOf(kind schema.GroupVersionKind) schema.GroupVersionResource {
	plural := map[string]string{
		"Pod": "pods", "Deployment": "deployments", "ReplicaSet": "replicasets", "StatefulSet": "statefulsets",
		"DaemonSet": "daemonsets", "Job": "jobs", "CronJob": "cronjobs",
	}[kind.Kind]
	return kind.GroupVersion().WithResource(plural)
}

func metaOf(obj runtime.Object) (metav1.Object, error) {
	m, ok := obj.(metav1.Object)
	if !ok {
		return nil, fmt.Errorf("%T has no object metadata", obj)
	}
	return m, nil
}

// mutate runs the mutating webhook's handler logic for the object's kind.
func mutate(cfg *config.Config, obj runtime.Object, op admissionv1.Operation, in mutation.Input) (runtime.Object, Mutation, error) {
	switch o := obj.(type) {
	case *corev1.Pod:
		if op != admissionv1.Create {
			return obj, Mutation{Note: "Pods are mutated at CREATE (and pods/resize) only"}, nil
		}
		res := mutation.MutatePod(cfg, o, in)
		patch, err := webhook.JSONPatch(o, res.Pod)
		if err != nil {
			return nil, Mutation{}, err
		}
		m := Mutation{
			Endpoint: webhook.PathMutatePods, Skipped: res.Skipped, Applied: res.Applied, Warnings: res.Warnings,
			Patch: patch, Resources: resourceChanges(&o.Spec, &res.Pod.Spec),
		}
		if v, ok := res.Pod.Annotations[config.AnnotationOvercommit]; ok {
			if rec, err := mutation.ParseOvercommitRecord(v); err == nil {
				m.Overcommit = &rec.Ratios
			}
		}
		if res.Skipped == "" {
			m.Placement = describePlacement(cfg, in.NamespaceLabels, res.Pod.Labels, &o.Spec, &res.Pod.Spec)
		}
		return res.Pod, m, nil
	case *appsv1.DaemonSet:
		tmpl, applied := mutation.MutatePodTemplate(cfg, &o.Spec.Template, in)
		out := o.DeepCopy()
		out.Spec.Template = *tmpl
		patch, err := webhook.JSONPatch(o, out)
		if err != nil {
			return nil, Mutation{}, err
		}
		m := Mutation{Endpoint: webhook.PathMutateDaemonSets, Applied: applied, Patch: patch}
		switch {
		case cfg.IsExemptNamespace(in.Namespace, in.OwnNamespace):
			m.Skipped = mutation.SkipExemptNamespace
		case tmpl.Labels[config.LabelExempt] == config.ExemptValue:
			m.Skipped = mutation.SkipExemptLabel
		default:
			m.Placement = describePlacement(cfg, in.NamespaceLabels, tmpl.Labels, &o.Spec.Template.Spec, &tmpl.Spec)
		}
		return out, m, nil
	}
	kind := obj.GetObjectKind().GroupVersionKind().Kind
	return obj, Mutation{Note: kind + " objects are not mutated; the pods created from their template are, at CREATE"}, nil
}

// decide runs the validating webhook's evaluation on the mutated object.
func decide(ctx context.Context, b *policy.Bundle, cfg *config.Config, obj runtime.Object, kind schema.GroupVersionKind,
	op admissionv1.Operation, ns policy.Namespace, own string, user authenticationv1.UserInfo) (Decision, error) {
	raw, err := json.Marshal(obj)
	if err != nil {
		return Decision{}, fmt.Errorf("encoding %s: %w", kind.Kind, err)
	}
	meta, err := metaOf(obj)
	if err != nil {
		return Decision{}, err
	}
	gvk := metav1.GroupVersionKind{Group: kind.Group, Version: kind.Version, Kind: kind.Kind}
	gvr := resourceOf(kind)
	resource := metav1.GroupVersionResource{Group: gvr.Group, Version: gvr.Version, Resource: gvr.Resource}
	dryRun := false
	req := &admissionv1.AdmissionRequest{
		UID: requestUID, Kind: gvk, Resource: resource, RequestKind: &gvk, RequestResource: &resource,
		Name: meta.GetName(), Namespace: ns.Name, Operation: op, UserInfo: user,
		Object: runtime.RawExtension{Raw: raw}, DryRun: &dryRun,
	}
	// The webhook's engine options, so explain judges as it does.
	engine := policy.NewEngine(b, policy.EngineOptions{})
	d, evalErr := engine.Evaluate(ctx, policy.Input{Request: req, Namespace: ns, Config: cfg, OwnNamespace: own})
	out := Decision{
		BundleRevision: d.BundleRevision, Result: d.Result(), ExemptNamespace: d.ExemptNamespace, Violations: d.Violations,
	}
	if out.Violations == nil {
		out.Violations = []policy.Violation{}
	}
	if evalErr != nil {
		if ctx.Err() != nil {
			return Decision{}, evalErr
		}
		out.Error = evalErr.Error()
	}
	return out, nil
}
