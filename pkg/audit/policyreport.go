package audit

import (
	"fmt"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// The PolicyReport API (wgpolicyk8s.io/v1alpha2) the audit writes; the CRD
// is manifests/base/crds/wgpolicyk8s.io_policyreports.yaml.
const (
	ReportGroup    = "wgpolicyk8s.io"
	ReportVersion  = "v1alpha2"
	ReportKind     = "PolicyReport"
	ReportResource = "policyreports"
	// ReportName is the one report per namespace the audit owns.
	ReportName = "harbormaster-audit"
	// ResultSource is every result's source.
	ResultSource = "harbormaster"
)

// Labels and annotations on the reports.
const (
	LabelManagedBy           = "app.kubernetes.io/managed-by"
	ManagedByValue           = "harbormaster"
	AnnotationBundleRevision = "harbormaster.io/bundle-revision"
	AnnotationConfigRevision = "harbormaster.io/config-revision"
	AnnotationPods           = "harbormaster.io/audited-pods"
	AnnotationOmitted        = "harbormaster.io/results-omitted"
	AnnotationAuditedAt      = "harbormaster.io/audited-at"
)

// Result values of the PolicyReport API.
const (
	ResultPass  = "pass"
	ResultFail  = "fail"
	ResultWarn  = "warn"
	ResultError = "error"
	ResultSkip  = "skip"
)

// Keys of Result.Properties.
const (
	PropertyEnforcement    = "enforcement"
	PropertyBundleRevision = "bundleRevision"
	PropertyConfigRevision = "configRevision"
	PropertyFields         = "fields"
	PropertyUser           = "evaluatedAsUser"
)

// ReportGVR is the resource the dynamic client writes.
func ReportGVR() schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: ReportGroup, Version: ReportVersion, Resource: ReportResource}
}

// PolicyReport is the wgpolicyk8s.io/v1alpha2 object, only the fields the
// audit writes. It is converted to unstructured: no generated client needed.
type PolicyReport struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Summary           Summary  `json:"summary"`
	Results           []Result `json:"results,omitempty"`
}

// Summary counts every result of the run, including those the cap left
// out of Results and the passes, which are never listed.
type Summary struct {
	Pass  int `json:"pass"`
	Fail  int `json:"fail"`
	Warn  int `json:"warn"`
	Error int `json:"error"`
	Skip  int `json:"skip"`
}

// Add returns the sum of two summaries.
func (s Summary) Add(o Summary) Summary {
	return Summary{Pass: s.Pass + o.Pass, Fail: s.Fail + o.Fail, Warn: s.Warn + o.Warn, Error: s.Error + o.Error, Skip: s.Skip + o.Skip}
}

// Result is one (pod, rule) finding.
type Result struct {
	// Policy is the rule id, e.g. HM-DH-003.
	Policy string `json:"policy"`
	// Rule is the rule's title.
	Rule     string `json:"rule,omitempty"`
	Category string `json:"category,omitempty"`
	Severity string `json:"severity,omitempty"`
	Result   string `json:"result"`
	Message  string `json:"message,omitempty"`
	Scored   bool   `json:"scored"`
	Source   string `json:"source"`
	// Timestamp is when the audit run started.
	Timestamp  Timestamp                `json:"timestamp"`
	Resources  []corev1.ObjectReference `json:"resources"`
	Properties map[string]string        `json:"properties,omitempty"`
}

// Timestamp is the API's protobuf-style time.
type Timestamp struct {
	Seconds int64 `json:"seconds"`
	Nanos   int32 `json:"nanos"`
}

// TimestampOf converts t.
func TimestampOf(t time.Time) Timestamp {
	return Timestamp{Seconds: t.Unix(), Nanos: int32(t.Nanosecond())}
}

// PolicyReportOf is the PolicyReport object of one namespace's audit.
func PolicyReportOf(r NamespaceReport) *PolicyReport {
	return &PolicyReport{
		TypeMeta: metav1.TypeMeta{APIVersion: ReportGroup + "/" + ReportVersion, Kind: ReportKind},
		ObjectMeta: metav1.ObjectMeta{
			Name:      ReportName,
			Namespace: r.Namespace,
			Labels:    map[string]string{LabelManagedBy: ManagedByValue},
			Annotations: map[string]string{
				AnnotationBundleRevision: r.BundleRevision,
				AnnotationConfigRevision: r.ConfigRevision,
				AnnotationPods:           strconv.Itoa(r.Pods),
				AnnotationOmitted:        strconv.Itoa(r.Omitted),
				AnnotationAuditedAt:      r.AuditedAt.UTC().Format(time.RFC3339),
			},
		},
		Summary: r.Summary,
		Results: r.Results,
	}
}

// Unstructured converts the report for the dynamic client.
func (p *PolicyReport) Unstructured() (*unstructured.Unstructured, error) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(p)
	if err != nil {
		return nil, fmt.Errorf("converting PolicyReport %s/%s: %w", p.Namespace, p.Name, err)
	}
	return &unstructured.Unstructured{Object: m}, nil
}

// PolicyReportFrom reads a PolicyReport object back, for tests and tools.
func PolicyReportFrom(u *unstructured.Unstructured) (*PolicyReport, error) {
	p := &PolicyReport{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, p); err != nil {
		return nil, fmt.Errorf("reading PolicyReport %s/%s: %w", u.GetNamespace(), u.GetName(), err)
	}
	return p, nil
}
