// Package audit judges the pods that already run against the current
// configuration and policies, and reports the findings as PolicyReport
// objects (wgpolicyk8s.io/v1alpha2), one per namespace. Admission only sees
// new requests; the audit finds what got in before a rule, a tenant's
// settings or the webhook existed.
//
// The core (Evaluate) is a function of pods, namespace labels, config and
// policy bundle; Runner reads the cluster and writes the reports.
//
// Each pod is judged as a CREATE of the pod as it was created: status,
// managed fields and a scheduler-set spec.nodeName are dropped. The
// requester is the pod's controller when a built-in controller owns it
// (system:serviceaccount:kube-system:<controller>, which the policies trust
// to carry its workload's checked template), else an empty user: the
// creator of a bare pod is not recorded anywhere the audit can read.
package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/harbormaster-dev/harbormaster/pkg/config"
	"github.com/harbormaster-dev/harbormaster/pkg/policy"
)

// DefaultMaxResultsPerReport caps the results of one report when Input
// leaves it 0: an object stays well under etcd's size limit.
const DefaultMaxResultsPerReport = 100

// PolicyEvaluation is the Result.Policy of a pod the policies could not
// judge.
const PolicyEvaluation = "harbormaster-evaluation"

// Input is one audit run's view of the cluster.
type Input struct {
	Pods []corev1.Pod
	// NamespaceLabels are keyed by namespace name; a namespace missing here
	// (deleted during the run) has no labels.
	NamespaceLabels map[string]map[string]string
	Config          *config.Config
	ConfigRevision  string
	Bundle          *policy.Bundle
	// OwnNamespace is the webhook's namespace, exempt like the system ones.
	OwnNamespace string
	// MaxResultsPerReport caps Results per namespace; 0 means
	// DefaultMaxResultsPerReport. Summaries always count everything.
	MaxResultsPerReport int
	// Now stamps the results.
	Now time.Time
}

// NamespaceReport is the audit of one namespace's pods.
type NamespaceReport struct {
	Namespace string
	Summary   Summary
	// Results are the fail, error and warn findings, most severe first,
	// capped; passes are only counted.
	Results []Result
	// Omitted is how many findings the cap left out.
	Omitted        int
	Pods           int
	BundleRevision string
	ConfigRevision string
	AuditedAt      time.Time
}

// Evaluate judges every pod outside exempt namespaces and returns one
// report per namespace that has such pods, sorted by namespace. Every rule
// of the bundle is evaluated on every pod: a (pod, rule) pair without a
// violation is a pass. An error is returned only when ctx ends; a pod the
// policies cannot judge becomes an error result.
func Evaluate(ctx context.Context, in Input) ([]NamespaceReport, error) {
	if in.Bundle == nil {
		return nil, errors.New("audit: no policy bundle")
	}
	cfg := in.Config
	if cfg == nil {
		cfg = config.Default()
	}
	maxResults := in.MaxResultsPerReport
	if maxResults <= 0 {
		maxResults = DefaultMaxResultsPerReport
	}
	engine := policy.NewEngine(in.Bundle, policy.EngineOptions{})
	catalog := in.Bundle.Catalog()
	stamp := TimestampOf(in.Now)

	byNamespace := map[string]*NamespaceReport{}
	for i := range in.Pods {
		// OPA checks the context only now and then; a stopped run ends here.
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		pod := &in.Pods[i]
		if cfg.IsExemptNamespace(pod.Namespace, in.OwnNamespace) {
			continue
		}
		report := byNamespace[pod.Namespace]
		if report == nil {
			report = &NamespaceReport{
				Namespace: pod.Namespace, BundleRevision: in.Bundle.Revision(), ConfigRevision: in.ConfigRevision, AuditedAt: in.Now,
			}
			byNamespace[pod.Namespace] = report
		}
		report.Pods++

		req, err := admissionRequest(pod)
		if err != nil {
			// Only an unencodable pod gets here; report it, judge the rest.
			report.add(errorResult(pod, stamp, err, in))
			continue
		}
		labels := in.NamespaceLabels[pod.Namespace]
		d, err := engine.Evaluate(ctx, policy.Input{
			Request:      req,
			Namespace:    policy.Namespace{Name: pod.Namespace, Labels: labels},
			Config:       cfg,
			OwnNamespace: in.OwnNamespace,
		})
		if err != nil {
			if ctxErr := ctx.Err(); ctxErr != nil {
				return nil, ctxErr
			}
			report.add(errorResult(pod, stamp, err, in))
			continue
		}
		results := podResults(pod, d, in.Bundle, stamp, in.ConfigRevision, req.UserInfo.Username)
		for _, r := range results {
			report.add(r)
		}
		report.Summary.Pass += passes(catalog, results)
	}

	out := make([]NamespaceReport, 0, len(byNamespace))
	for _, r := range byNamespace {
		sortResults(r.Results)
		if len(r.Results) > maxResults {
			r.Omitted = len(r.Results) - maxResults
			r.Results = slices.Clip(r.Results[:maxResults])
		}
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Namespace < out[j].Namespace })
	return out, nil
}

func (r *NamespaceReport) add(res Result) {
	switch res.Result {
	case ResultFail:
		r.Summary.Fail++
	case ResultWarn:
		r.Summary.Warn++
	case ResultError:
		r.Summary.Error++
	case ResultSkip:
		r.Summary.Skip++
	case ResultPass:
		r.Summary.Pass++
		return // passes are counted, never listed
	}
	r.Results = append(r.Results, res)
}

// passes counts the catalog rules the pod did not violate.
func passes(catalog []policy.RuleInfo, results []Result) int {
	n := 0
	for _, rule := range catalog {
		if !slices.ContainsFunc(results, func(r Result) bool { return r.Policy == rule.ID }) {
			n++
		}
	}
	return n
}

// podResults turns a decision into one result per violated rule: a rule
// that flags several fields of the pod is one finding with every message.
func podResults(pod *corev1.Pod, d policy.Decision, b *policy.Bundle, stamp Timestamp, configRevision, user string) []Result {
	var out []Result
	index := map[string]int{}
	for _, v := range d.Violations {
		id := v.ID
		if id == "" {
			id = "(no id)"
		}
		if i, seen := index[id]; seen {
			r := &out[i]
			r.Message += "; " + v.Msg
			if v.Field != "" {
				r.Properties[PropertyFields] = joinNonEmpty(r.Properties[PropertyFields], v.Field)
			}
			continue
		}
		r := Result{
			Policy: id, Rule: v.Title, Severity: v.Severity, Result: resultOf(v.Enforcement), Message: v.Msg,
			Scored: true, Source: ResultSource, Timestamp: stamp, Resources: []corev1.ObjectReference{podRef(pod)},
			Properties: map[string]string{
				PropertyEnforcement:    string(v.Enforcement),
				PropertyBundleRevision: d.BundleRevision,
				PropertyConfigRevision: configRevision,
			},
		}
		if info, ok := b.Rule(id); ok {
			r.Category = strings.TrimPrefix(info.Package, "harbormaster.")
		}
		if v.Field != "" {
			r.Properties[PropertyFields] = v.Field
		}
		if user != "" {
			r.Properties[PropertyUser] = user
		}
		index[id] = len(out)
		out = append(out, r)
	}
	return out
}

func joinNonEmpty(a, b string) string {
	if a == "" {
		return b
	}
	return a + ", " + b
}

// resultOf maps an effective enforcement to a PolicyReport result. A
// dryrun rule is reported as warn: auditors see what a rollout would
// refuse, and properties.enforcement says it is a dry run.
func resultOf(e config.Enforcement) string {
	if e == config.EnforcementDeny {
		return ResultFail
	}
	return ResultWarn
}

func errorResult(pod *corev1.Pod, stamp Timestamp, err error, in Input) Result {
	return Result{
		Policy: PolicyEvaluation, Rule: "Policy evaluation", Result: ResultError,
		Message: err.Error(), Scored: true, Source: ResultSource, Timestamp: stamp,
		Resources: []corev1.ObjectReference{podRef(pod)},
		Properties: map[string]string{
			PropertyBundleRevision: in.Bundle.Revision(),
			PropertyConfigRevision: in.ConfigRevision,
		},
	}
}

// sortResults puts the most severe first: fail, error, warn, dry-run
// warn; then by severity; then by pod and rule for a stable order.
func sortResults(rs []Result) {
	sort.SliceStable(rs, func(i, j int) bool {
		a, b := rs[i], rs[j]
		if ra, rb := resultRank(a), resultRank(b); ra != rb {
			return ra < rb
		}
		if sa, sb := severityRank(a.Severity), severityRank(b.Severity); sa != sb {
			return sa < sb
		}
		if pa, pb := a.Resources[0].Name, b.Resources[0].Name; pa != pb {
			return pa < pb
		}
		return a.Policy < b.Policy
	})
}

func resultRank(r Result) int {
	switch r.Result {
	case ResultFail:
		return 0
	case ResultError:
		return 1
	case ResultWarn:
		if r.Properties[PropertyEnforcement] == string(config.EnforcementDryRun) {
			return 3
		}
		return 2
	}
	return 4
}

func severityRank(s string) int {
	switch s {
	case "critical":
		return 0
	case "high":
		return 1
	case "medium":
		return 2
	case "low":
		return 3
	case "info":
		return 4
	}
	return 5
}

func podRef(pod *corev1.Pod) corev1.ObjectReference {
	return corev1.ObjectReference{APIVersion: "v1", Kind: "Pod", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID}
}

// admissionRequest is the CREATE the API server would send the validating
// webhook for this pod, as it was created.
func admissionRequest(pod *corev1.Pod) (*admissionv1.AdmissionRequest, error) {
	created := podAsCreated(pod)
	raw, err := json.Marshal(created)
	if err != nil {
		return nil, fmt.Errorf("encoding pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	kind := metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}
	resource := metav1.GroupVersionResource{Version: "v1", Resource: "pods"}
	dryRun := false
	return &admissionv1.AdmissionRequest{
		UID: pod.UID, Kind: kind, Resource: resource, RequestKind: &kind, RequestResource: &resource,
		Name: pod.Name, Namespace: pod.Namespace, Operation: admissionv1.Create,
		UserInfo: RequesterOf(pod), Object: runtime.RawExtension{Raw: raw}, DryRun: &dryRun,
	}, nil
}

// podAsCreated strips what the cluster added after the CREATE: status,
// managed fields, and spec.nodeName when the scheduler set it (judging a
// binding as a pinned pod would flag every scheduled tenant pod).
func podAsCreated(pod *corev1.Pod) *corev1.Pod {
	out := pod.DeepCopy()
	out.SetGroupVersionKind(schema.GroupVersionKind{Version: "v1", Kind: "Pod"})
	if out.Spec.NodeName != "" && !nodeNameSetByCreator(pod) {
		out.Spec.NodeName = ""
	}
	out.Status = corev1.PodStatus{}
	out.ManagedFields = nil
	return out
}

// nodeNameSetByCreator reports whether spec.nodeName came with the pod
// rather than from a binding. The API server records the fields a client
// writes in managedFields, but a pods/binding sets nodeName without a
// managed-fields entry; so a nodeName no entry owns was set by the
// scheduler. Without any managed fields the audit cannot tell and judges
// the field.
func nodeNameSetByCreator(pod *corev1.Pod) bool {
	if len(pod.ManagedFields) == 0 {
		return true
	}
	for _, mf := range pod.ManagedFields {
		if mf.FieldsV1 == nil || mf.Subresource != "" {
			continue
		}
		var fields map[string]map[string]any
		if err := json.Unmarshal(mf.FieldsV1.Raw, &fields); err != nil {
			continue
		}
		if _, ok := fields["f:spec"]["f:nodeName"]; ok {
			return true
		}
	}
	return false
}

// builtinControllers are the kube-controller-manager controllers that
// create pods, by owner group and kind, with the service account each runs
// as (controllers use per-controller credentials in kubeadm-style clusters).
func builtinControllers() map[schema.GroupKind]string {
	return map[schema.GroupKind]string{
		{Group: "apps", Kind: "ReplicaSet"}:        "replicaset-controller",
		{Group: "apps", Kind: "StatefulSet"}:       "statefulset-controller",
		{Group: "apps", Kind: "DaemonSet"}:         "daemon-set-controller",
		{Group: "batch", Kind: "Job"}:              "job-controller",
		{Group: "", Kind: "ReplicationController"}: "replication-controller",
	}
}

// RequesterOf is the user the audit judges a pod's CREATE as: the
// kube-system service account of the built-in controller that owns it, or
// an empty user. A custom controller's identity is unknown; granting it
// the built-in controllers' trust would hide a real escape.
func RequesterOf(pod *corev1.Pod) authenticationv1.UserInfo {
	owner := metav1.GetControllerOfNoCopy(pod)
	if owner == nil {
		return authenticationv1.UserInfo{}
	}
	gv, err := schema.ParseGroupVersion(owner.APIVersion)
	if err != nil {
		return authenticationv1.UserInfo{}
	}
	sa, ok := builtinControllers()[schema.GroupKind{Group: gv.Group, Kind: owner.Kind}]
	if !ok {
		return authenticationv1.UserInfo{}
	}
	return authenticationv1.UserInfo{
		Username: "system:serviceaccount:kube-system:" + sa,
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"},
	}
}
