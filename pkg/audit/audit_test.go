package audit

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/harbormaster-dev/harbormaster/pkg/config"
	"github.com/harbormaster-dev/harbormaster/pkg/policy"
	"github.com/harbormaster-dev/harbormaster/pkg/policy/policytest"
	"github.com/harbormaster-dev/harbormaster/policies"
)

const testConfig = `apiVersion: config.harbormaster.io/v1alpha1
kind: HarbormasterConfig
hostGroups:
  general: {nodeSelector: {matchLabels: {harbormaster.io/host-group: general}}}
  restricted: {nodeSelector: {matchLabels: {harbormaster.io/host-group: restricted}}}
tenants:
  team-a: {hostGroups: [general], defaultHostGroup: general}
  team-b: {hostGroups: [restricted], defaultHostGroup: restricted}
dedicatedPools:
  secure-b: {tenant: team-b}
privileged: {users: [alice]}
`

const ownNamespace = "harbormaster-system"

func parseConfig(t *testing.T, extra string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(testConfig + extra))
	require.NoError(t, err)
	return cfg
}

func embeddedBundle(t *testing.T) *policy.Bundle {
	t.Helper()
	b, err := policy.Load(t.Context(), policies.FS, policy.LoadOptions{})
	require.NoError(t, err)
	return b
}

func namespaceLabels() map[string]map[string]string {
	return map[string]map[string]string{
		"team-a-web": {config.LabelTenant: "team-a"},
		"scratch":    {},
	}
}

type podOption func(*corev1.Pod)

// confinedPod is a tenant pod as the mutating webhook leaves it: limits
// and a required node affinity inside host group general.
func confinedPod(namespace, name string, opts ...podOption) corev1.Pod {
	p := corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, UID: types.UID("uid-" + name)},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10", Resources: corev1.ResourceRequirements{
				Limits: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("1Gi")},
			}}},
			Affinity: &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
				RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
					MatchExpressions: []corev1.NodeSelectorRequirement{{Key: config.LabelHostGroup, Operator: corev1.NodeSelectorOpIn, Values: []string{"general"}}},
				}}},
			}},
		},
	}
	for _, o := range opts {
		o(&p)
	}
	return p
}

func wildcardToleration(p *corev1.Pod) {
	p.Spec.Tolerations = []corev1.Toleration{{Operator: corev1.TolerationOpExists}}
}

func noLimits(p *corev1.Pod) {
	p.Spec.Containers[0].Resources = corev1.ResourceRequirements{}
	sidecar := p.Spec.Containers[0]
	sidecar.Name = "sidecar"
	p.Spec.Containers = append(p.Spec.Containers, sidecar)
}

func exemptLabel(p *corev1.Pod) {
	p.Labels = map[string]string{config.LabelExempt: config.ExemptValue}
}

func ownedBy(apiVersion, kind string) podOption {
	return func(p *corev1.Pod) {
		p.OwnerReferences = []metav1.OwnerReference{{APIVersion: apiVersion, Kind: kind, Name: "owner", UID: "owner-uid", Controller: ptrTo(true)}}
	}
}

// nodeName sets spec.nodeName; managedBy says whether a managed-fields
// entry owns it (set at creation) or not (set by a binding).
func nodeName(managedBy bool) podOption {
	return func(p *corev1.Pod) {
		p.Spec.NodeName = "general-0"
		fieldsJSON := `{"f:spec":{"f:containers":{}}}`
		if managedBy {
			fieldsJSON = `{"f:spec":{"f:containers":{},"f:nodeName":{}}}`
		}
		p.ManagedFields = []metav1.ManagedFieldsEntry{{
			Manager: "kubectl", Operation: metav1.ManagedFieldsOperationUpdate, APIVersion: "v1",
			FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(fieldsJSON)},
		}}
	}
}

func ptrTo[T any](v T) *T { return &v }

// findings returns "pod/rule/result" for every listed result.
func findings(r NamespaceReport) []string {
	var out []string
	for _, res := range r.Results {
		out = append(out, res.Resources[0].Name+"/"+res.Policy+"/"+res.Result)
	}
	return out
}

func TestEvaluate(t *testing.T) {
	bundle := embeddedBundle(t)
	rules := len(bundle.Catalog())
	now := time.Date(2025, 3, 1, 12, 0, 0, 5, time.UTC)

	tests := []struct {
		name string
		pods []corev1.Pod
		// extra is appended to the config.
		extra string
		// want are the listed findings ("pod/rule/result", in order) of
		// every namespace that gets a report.
		want map[string][]string
	}{
		{name: "compliant pod passes every rule", pods: []corev1.Pod{confinedPod("team-a-web", "ok")}, want: map[string][]string{"team-a-web": nil}},
		{
			name: "violations, most severe first",
			pods: []corev1.Pod{
				confinedPod("team-a-web", "ok"),
				confinedPod("team-a-web", "limitless", noLimits),
				confinedPod("team-a-web", "greedy", wildcardToleration),
				confinedPod("team-a-web", "sneaky", exemptLabel),
			},
			want: map[string][]string{"team-a-web": {"greedy/HM-DH-003/fail", "sneaky/HM-OO-001/fail", "limitless/HM-RS-001/fail"}},
		},
		{
			name: "built-in controllers are trusted with opt-outs, custom ones and bare pods are not",
			pods: []corev1.Pod{
				confinedPod("team-a-web", "from-replicaset", exemptLabel, ownedBy("apps/v1", "ReplicaSet")),
				confinedPod("team-a-web", "from-job", exemptLabel, ownedBy("batch/v1", "Job")),
				confinedPod("team-a-web", "from-operator", exemptLabel, ownedBy("example.com/v1", "ReplicaSet")),
				confinedPod("team-a-web", "bare", exemptLabel),
			},
			want: map[string][]string{"team-a-web": {"bare/HM-OO-001/fail", "from-operator/HM-OO-001/fail"}},
		},
		{
			name: "a nodeName set at creation is judged, one set by the scheduler is not",
			pods: []corev1.Pod{
				confinedPod("team-a-web", "pinned", nodeName(true)),
				confinedPod("team-a-web", "scheduled", nodeName(false)),
				confinedPod("team-a-web", "unknown", func(p *corev1.Pod) { p.Spec.NodeName = "general-0" }),
			},
			want: map[string][]string{"team-a-web": {"pinned/HM-HG-001/fail", "unknown/HM-HG-001/fail"}},
		},
		{
			name: "exempt namespaces are skipped, namespaces without tenant reported",
			pods: []corev1.Pod{confinedPod("kube-system", "dns", wildcardToleration), confinedPod(ownNamespace, "webhook"), confinedPod("scratch", "orphan")},
			want: map[string][]string{"scratch": {"orphan/HM-NS-001/fail"}},
		},
		{
			name:  "enforcement overrides: warn before dryrun",
			pods:  []corev1.Pod{confinedPod("scratch", "orphan", noLimits)},
			extra: "policy:\n  enforcement: {HM-NS-001: dryrun, HM-RS-001: warn}\n",
			want:  map[string][]string{"scratch": {"orphan/HM-RS-001/warn", "orphan/HM-NS-001/warn"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reports, err := Evaluate(t.Context(), Input{
				Pods: tc.pods, NamespaceLabels: namespaceLabels(), Config: parseConfig(t, tc.extra), ConfigRevision: "cfg-1",
				Bundle: bundle, OwnNamespace: ownNamespace, Now: now,
			})
			require.NoError(t, err)
			got := map[string][]string{}
			for _, r := range reports {
				got[r.Namespace] = findings(r)
				assert.Equal(t, bundle.Revision(), r.BundleRevision)
				assert.Equal(t, "cfg-1", r.ConfigRevision)
				// Every (pod, rule) pair is counted once.
				s := r.Summary
				assert.Equal(t, r.Pods*rules, s.Pass+s.Fail+s.Warn+s.Error+s.Skip, "summary of %s", r.Namespace)
				assert.Equal(t, s.Fail+s.Warn+s.Error, len(r.Results)+r.Omitted)
			}
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestEvaluateResultShape(t *testing.T) {
	bundle := embeddedBundle(t)
	now := time.Date(2025, 3, 1, 12, 0, 0, 5, time.UTC)
	reports, err := Evaluate(t.Context(), Input{
		Pods:            []corev1.Pod{confinedPod("team-a-web", "limitless", noLimits)},
		NamespaceLabels: namespaceLabels(), Config: parseConfig(t, ""), ConfigRevision: "cfg-1", Bundle: bundle, Now: now,
	})
	require.NoError(t, err)
	require.Len(t, reports, 1)
	require.Len(t, reports[0].Results, 1)
	r := reports[0].Results[0]
	info, ok := bundle.Rule("HM-RS-001")
	require.True(t, ok)
	assert.Equal(t, "HM-RS-001", r.Policy)
	assert.Equal(t, info.Title, r.Rule)
	assert.Equal(t, info.Severity, r.Severity)
	assert.Equal(t, "resources", r.Category)
	assert.Equal(t, ResultFail, r.Result)
	assert.Equal(t, ResultSource, r.Source)
	assert.True(t, r.Scored)
	assert.Equal(t, Timestamp{Seconds: now.Unix(), Nanos: 5}, r.Timestamp)
	assert.Equal(t, []corev1.ObjectReference{{APIVersion: "v1", Kind: "Pod", Namespace: "team-a-web", Name: "limitless", UID: "uid-limitless"}}, r.Resources)
	assert.Equal(t, "deny", r.Properties[PropertyEnforcement])
	assert.Equal(t, bundle.Revision(), r.Properties[PropertyBundleRevision])
	assert.Equal(t, "cfg-1", r.Properties[PropertyConfigRevision])
	// Both containers lack limits: one finding naming both.
	assert.Contains(t, r.Properties[PropertyFields], "spec.containers[0]")
	assert.Contains(t, r.Properties[PropertyFields], "spec.containers[1]")
	assert.Contains(t, r.Message, "; ")
	_, hasUser := r.Properties[PropertyUser]
	assert.False(t, hasUser, "a bare pod is judged as an empty user")
}

func TestEvaluateCap(t *testing.T) {
	bundle := embeddedBundle(t)
	pods := []corev1.Pod{
		confinedPod("team-a-web", "a-limitless", noLimits),
		confinedPod("team-a-web", "b-greedy", wildcardToleration),
		confinedPod("team-a-web", "c-pinned", nodeName(true)),
	}
	in := Input{Pods: pods, NamespaceLabels: namespaceLabels(), Config: parseConfig(t, ""), Bundle: bundle}
	full, err := Evaluate(t.Context(), in)
	require.NoError(t, err)
	in.MaxResultsPerReport = 1
	capped, err := Evaluate(t.Context(), in)
	require.NoError(t, err)

	require.Len(t, full, 1)
	require.Len(t, capped, 1)
	assert.Len(t, full[0].Results, 3)
	assert.Equal(t, []string{"b-greedy/HM-DH-003/fail"}, findings(capped[0]), "critical first, then by pod name")
	assert.Equal(t, 2, capped[0].Omitted)
	assert.Equal(t, full[0].Summary, capped[0].Summary, "summaries count everything")
	assert.Equal(t, 3, capped[0].Summary.Fail)
}

func TestEvaluateErrors(t *testing.T) {
	bundle := policytest.RuntimeErrorBundle(t)
	reports, err := Evaluate(t.Context(), Input{
		Pods: []corev1.Pod{confinedPod("team-a-web", "a"), confinedPod("team-a-web", "b")}, NamespaceLabels: namespaceLabels(), Bundle: bundle,
	})
	require.NoError(t, err)
	require.Len(t, reports, 1)
	assert.Equal(t, Summary{Error: 2}, reports[0].Summary)
	assert.Equal(t, []string{"a/" + PolicyEvaluation + "/error", "b/" + PolicyEvaluation + "/error"}, findings(reports[0]))

	_, err = Evaluate(t.Context(), Input{})
	require.Error(t, err, "no bundle")

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = Evaluate(ctx, Input{Pods: []corev1.Pod{confinedPod("team-a-web", "a")}, Bundle: embeddedBundle(t)})
	require.Error(t, err, "a canceled run fails instead of reporting every pod as an error")
}

func TestRequesterOf(t *testing.T) {
	tests := []struct {
		name  string
		owner podOption
		want  string
	}{
		{"bare pod", func(*corev1.Pod) {}, ""},
		{"replicaset", ownedBy("apps/v1", "ReplicaSet"), "system:serviceaccount:kube-system:replicaset-controller"},
		{"statefulset", ownedBy("apps/v1", "StatefulSet"), "system:serviceaccount:kube-system:statefulset-controller"},
		{"daemonset", ownedBy("apps/v1", "DaemonSet"), "system:serviceaccount:kube-system:daemon-set-controller"},
		{"job", ownedBy("batch/v1", "Job"), "system:serviceaccount:kube-system:job-controller"},
		{"replicationcontroller", ownedBy("v1", "ReplicationController"), "system:serviceaccount:kube-system:replication-controller"},
		{"custom controller", ownedBy("example.com/v1", "Workflow"), ""},
		{"owner that is not the controller", func(p *corev1.Pod) {
			p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "x", UID: "y"}}
		}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := confinedPod("ns", "p", tc.owner)
			got := RequesterOf(&p)
			assert.Equal(t, tc.want, got.Username)
			if tc.want != "" {
				assert.Contains(t, got.Groups, "system:serviceaccounts:kube-system")
			} else {
				assert.Equal(t, authenticationv1.UserInfo{}, got)
			}
		})
	}
}

func TestPolicyReportObject(t *testing.T) {
	bundle := embeddedBundle(t)
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	reports, err := Evaluate(t.Context(), Input{
		Pods: []corev1.Pod{confinedPod("team-a-web", "greedy", wildcardToleration), confinedPod("team-a-web", "ok")}, NamespaceLabels: namespaceLabels(),
		Config: parseConfig(t, ""), ConfigRevision: "cfg-1", Bundle: bundle, Now: now, MaxResultsPerReport: 5,
	})
	require.NoError(t, err)
	u, err := PolicyReportOf(reports[0]).Unstructured()
	require.NoError(t, err)
	assert.Equal(t, "wgpolicyk8s.io/v1alpha2", u.GetAPIVersion())
	assert.Equal(t, "PolicyReport", u.GetKind())
	assert.Equal(t, ReportName, u.GetName())
	assert.Equal(t, "team-a-web", u.GetNamespace())
	assert.Equal(t, ManagedByValue, u.GetLabels()[LabelManagedBy])
	assert.Equal(t, "2", u.GetAnnotations()[AnnotationPods])
	assert.Equal(t, "0", u.GetAnnotations()[AnnotationOmitted])
	assert.Equal(t, "2025-03-01T12:00:00Z", u.GetAnnotations()[AnnotationAuditedAt])
	summary := u.Object["summary"].(map[string]any)
	assert.EqualValues(t, 1, summary["fail"])
	assert.EqualValues(t, 2*len(bundle.Catalog())-1, summary["pass"])
	results := u.Object["results"].([]any)
	require.Len(t, results, 1)
	first := results[0].(map[string]any)
	assert.Equal(t, "HM-DH-003", first["policy"])
	assert.Equal(t, "critical", first["severity"])
	assert.EqualValues(t, now.Unix(), first["timestamp"].(map[string]any)["seconds"])
	assert.Equal(t, "uid-greedy", first["resources"].([]any)[0].(map[string]any)["uid"])

	back, err := PolicyReportFrom(u)
	require.NoError(t, err)
	assert.Equal(t, reports[0].Results, back.Results)
	assert.Equal(t, reports[0].Summary, back.Summary)
}
