package e2e

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/harbormaster-dev/harbormaster/pkg/audit"
	"github.com/harbormaster-dev/harbormaster/pkg/config"
	"github.com/harbormaster-dev/harbormaster/pkg/policy"
	"github.com/harbormaster-dev/harbormaster/pkg/webhook"
	"github.com/harbormaster-dev/harbormaster/policies"
	"github.com/harbormaster-dev/harbormaster/test/framework"
)

// TestAuditWritesPolicyReports creates violating pods while no webhook is
// installed, as in a cluster that predates Harbormaster or a rule, then
// audits them through the package API and reads the PolicyReports back.
func TestAuditWritesPolicyReports(t *testing.T) {
	cp := framework.Start(t, framework.Options{})
	ctx := t.Context()
	c := cp.Client
	installCRDs(t, cp, filepath.Join("manifests", "base", "crds"))

	require.NoError(t, framework.EnsureNamespace(ctx, cp, framework.WebhookNamespace))
	require.NoError(t, framework.ApplyConfig(ctx, cp, admissionConfig))
	require.NoError(t, framework.CreateNodes(ctx, c, framework.NodeSpec{
		Name: "general-0", CPU: "16", Memory: "64Gi", Labels: map[string]string{config.LabelHostGroup: "general"},
	}))
	tenantNS, orphanNS := "team-a-audit", "no-tenant-audit"
	for name, labels := range map[string]map[string]string{tenantNS: {config.LabelTenant: "team-a"}, orphanNS: nil} {
		_, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}, metav1.CreateOptions{})
		require.NoError(t, err)
	}

	// Each tenant pod is confined as the mutating webhook would have left
	// it, so it breaks exactly the rule its name says.
	pods := map[string]*corev1.Pod{
		"compliant":   auditPod(),
		"bound":       auditPod(),
		"wildcard":    auditPod(func(p *corev1.Pod) { p.Spec.Tolerations = []corev1.Toleration{{Operator: corev1.TolerationOpExists}} }),
		"no-limits":   auditPod(func(p *corev1.Pod) { p.Spec.Containers[0].Resources = corev1.ResourceRequirements{} }),
		"pinned":      auditPod(func(p *corev1.Pod) { p.Spec.NodeName = "general-0" }),
		"exempt-bare": auditPod(func(p *corev1.Pod) { p.Labels = map[string]string{config.LabelExempt: config.ExemptValue} }),
		// Its controller is trusted with the opt-out, so it was rightly
		// left unconfined.
		"exempt-owned": auditPod(func(p *corev1.Pod) {
			p.Labels = map[string]string{config.LabelExempt: config.ExemptValue}
			p.Spec.Affinity = nil
			p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-5d8f", UID: "2f7c1b9e-0000-4000-8000-000000000001", Controller: ptr.To(true)}}
		}),
	}
	uids := map[string]string{}
	for name, pod := range pods {
		pod.Name = name
		created, err := c.CoreV1().Pods(tenantNS).Create(ctx, pod, metav1.CreateOptions{})
		require.NoError(t, err, name)
		uids[name] = string(created.UID)
	}
	// The scheduler's binding sets nodeName too; it is not the pod's doing.
	require.NoError(t, c.CoreV1().Pods(tenantNS).Bind(ctx, &corev1.Binding{
		ObjectMeta: metav1.ObjectMeta{Name: "bound"}, Target: corev1.ObjectReference{Kind: "Node", Name: "general-0"},
	}, metav1.CreateOptions{}))
	orphan := auditPod()
	orphan.Name = "orphan"
	_, err := c.CoreV1().Pods(orphanNS).Create(ctx, orphan, metav1.CreateOptions{})
	require.NoError(t, err)
	system := auditPod(func(p *corev1.Pod) { p.Spec.Tolerations = []corev1.Toleration{{Operator: corev1.TolerationOpExists}} })
	system.Name = "system"
	_, err = c.CoreV1().Pods(framework.WebhookNamespace).Create(ctx, system, metav1.CreateOptions{})
	require.NoError(t, err)

	reports, err := dynamic.NewForConfig(cp.Config)
	require.NoError(t, err)
	runner := &audit.Runner{
		Client: c, Reports: reports,
		Source: audit.ClusterSource{
			Client: c, Namespace: framework.WebhookNamespace, ConfigMapName: framework.ConfigMapName,
			PolicyConfigMapName: framework.PolicyConfigMapName, Embedded: policies.FS,
		},
		OwnNamespace: framework.WebhookNamespace,
		Log:          klog.Background().WithName("audit"),
	}
	rules := embeddedRuleCount(t)

	require.NoError(t, runner.Run(ctx))
	first := readReport(t, reports, tenantNS)
	assert.Equal(t, 4, first.Summary.Fail)
	assert.Equal(t, 0, first.Summary.Error)
	assert.Equal(t, len(pods)*rules, first.Summary.Pass+first.Summary.Fail+first.Summary.Warn+first.Summary.Error+first.Summary.Skip,
		"every (pod, rule) pair is counted")
	assert.Equal(t, map[string]string{"wildcard": "HM-DH-003", "no-limits": "HM-RS-001", "pinned": "HM-HG-001", "exempt-bare": "HM-OO-001"},
		failuresByPod(t, first, tenantNS, uids))
	assert.Equal(t, "HM-HG-001", first.Results[0].Policy, "critical failures first")
	assert.Equal(t, "7", first.Annotations[audit.AnnotationPods])
	for _, r := range first.Results {
		assert.Equal(t, audit.ResultSource, r.Source)
		assert.NotZero(t, r.Timestamp.Seconds)
		assert.NotEmpty(t, r.Properties[audit.PropertyBundleRevision])
	}

	orphanReport := readReport(t, reports, orphanNS)
	assert.Equal(t, audit.Summary{Pass: rules - 1, Warn: 1}, orphanReport.Summary, "admissionConfig makes HM-NS-001 a warning")
	require.Len(t, orphanReport.Results, 1)
	assert.Equal(t, "HM-NS-001", orphanReport.Results[0].Policy)
	assert.Equal(t, audit.ResultWarn, orphanReport.Results[0].Result)

	_, err = reports.Resource(audit.ReportGVR()).Namespace(framework.WebhookNamespace).Get(ctx, audit.ReportName, metav1.GetOptions{})
	assert.Error(t, err, "exempt namespaces get no report")

	// The wildcard pod is gone and so is the orphan namespace's only pod:
	// the report is updated in place and the empty namespace's is deleted.
	for ns, name := range map[string]string{tenantNS: "wildcard", orphanNS: "orphan"} {
		require.NoError(t, c.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}))
	}
	waitPodGone(t, cp, tenantNS, "wildcard")
	waitPodGone(t, cp, orphanNS, "orphan")
	require.NoError(t, runner.Run(ctx))
	second := readReport(t, reports, tenantNS)
	assert.Equal(t, first.UID, second.UID, "updated in place")
	assert.NotEqual(t, first.ResourceVersion, second.ResourceVersion)
	assert.Equal(t, 3, second.Summary.Fail)
	assert.Equal(t, map[string]string{"no-limits": "HM-RS-001", "pinned": "HM-HG-001", "exempt-bare": "HM-OO-001"},
		failuresByPod(t, second, tenantNS, uids))
	_, err = reports.Resource(audit.ReportGVR()).Namespace(orphanNS).Get(ctx, audit.ReportName, metav1.GetOptions{})
	assert.Error(t, err, "the report of a namespace without pods is deleted")

	// The cap lists the most severe result only; the summary still counts
	// everything.
	runner.MaxResultsPerReport = 1
	require.NoError(t, runner.Run(ctx))
	capped := readReport(t, reports, tenantNS)
	require.Len(t, capped.Results, 1)
	assert.Equal(t, "HM-HG-001", capped.Results[0].Policy)
	assert.Equal(t, second.Summary, capped.Summary)
	assert.Equal(t, "2", capped.Annotations[audit.AnnotationOmitted])
}

// auditPod is a tenant pod with limits, confined to host group general.
func auditPod(opts ...func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{Spec: limitOnly("1", "1Gi")}
	p.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
		RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
			MatchExpressions: []corev1.NodeSelectorRequirement{{Key: config.LabelHostGroup, Operator: corev1.NodeSelectorOpIn, Values: []string{"general"}}},
		}}},
	}}
	for _, o := range opts {
		o(p)
	}
	return p
}

// failuresByPod maps pod name to the rule id of its fail result, checking
// each result's resource reference against the live pod.
func failuresByPod(t *testing.T, r *audit.PolicyReport, namespace string, uids map[string]string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, res := range r.Results {
		if res.Result != audit.ResultFail {
			continue
		}
		require.Len(t, res.Resources, 1)
		ref := res.Resources[0]
		assert.Equal(t, corev1.ObjectReference{APIVersion: "v1", Kind: "Pod", Namespace: namespace, Name: ref.Name, UID: ref.UID}, ref)
		assert.Equal(t, uids[ref.Name], string(ref.UID), ref.Name)
		_, dup := out[ref.Name]
		assert.False(t, dup, "one result per (pod, rule): %s", ref.Name)
		out[ref.Name] = res.Policy
	}
	return out
}

func readReport(t *testing.T, reports dynamic.Interface, namespace string) *audit.PolicyReport {
	t.Helper()
	u, err := reports.Resource(audit.ReportGVR()).Namespace(namespace).Get(t.Context(), audit.ReportName, metav1.GetOptions{})
	require.NoError(t, err, "PolicyReport of %s", namespace)
	r, err := audit.PolicyReportFrom(u)
	require.NoError(t, err)
	return r
}

func embeddedRuleCount(t *testing.T) int {
	t.Helper()
	b, err := policy.Load(t.Context(), policies.FS, policy.LoadOptions{})
	require.NoError(t, err)
	return len(b.Catalog())
}

func waitPodGone(t *testing.T, cp *framework.ControlPlane, namespace, name string) {
	t.Helper()
	err := wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := cp.Client.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	require.NoError(t, err, "pod %s/%s not deleted", namespace, name)
}

// installCRDs creates every CRD the kustomization of dir lists and waits
// until the API server serves them.
func installCRDs(t *testing.T, cp *framework.ControlPlane, dir string) {
	t.Helper()
	root, err := framework.RepoRoot()
	require.NoError(t, err)
	data, err := os.ReadFile(filepath.Join(root, dir, "kustomization.yaml"))
	require.NoError(t, err)
	var kustomization struct {
		Resources []string `json:"resources"`
	}
	require.NoError(t, yaml.Unmarshal(data, &kustomization))
	require.NotEmpty(t, kustomization.Resources)
	client, err := apiextensionsclient.NewForConfig(cp.Config)
	require.NoError(t, err)
	var names []string
	for _, file := range kustomization.Resources {
		data, err := os.ReadFile(filepath.Join(root, dir, file))
		require.NoError(t, err)
		crd := &apiextensionsv1.CustomResourceDefinition{}
		require.NoError(t, yaml.UnmarshalStrict(data, crd), file)
		_, err = client.ApiextensionsV1().CustomResourceDefinitions().Create(t.Context(), crd, metav1.CreateOptions{})
		require.NoError(t, err, file)
		names = append(names, crd.Name)
	}
	for _, name := range names {
		err := wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			crd, err := client.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			for _, cond := range crd.Status.Conditions {
				if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
					return true, nil
				}
			}
			return false, nil
		})
		require.NoError(t, err, "CRD %s not established", name)
	}
}

// TestWebhookPeriodicAudit runs the audit inside the webhook, as the
// deployment does with --audit-interval: the elected replica reports a pod
// that predates the webhook, judged by the configuration it serves.
func TestWebhookPeriodicAudit(t *testing.T) {
	cp := framework.Start(t, framework.Options{})
	ctx := t.Context()
	installCRDs(t, cp, filepath.Join("manifests", "base", "crds"))
	ns := "team-a-periodic"
	_, err := cp.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{config.LabelTenant: "team-a"}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	wildcard := auditPod(func(p *corev1.Pod) { p.Spec.Tolerations = []corev1.Toleration{{Operator: corev1.TolerationOpExists}} })
	wildcard.Name = "wildcard"
	_, err = cp.Client.CoreV1().Pods(ns).Create(ctx, wildcard, metav1.CreateOptions{})
	require.NoError(t, err)

	w, err := framework.StartWebhookWith(ctx, cp, t.TempDir(), admissionConfig, framework.WebhookOptions{
		LeaderElection: true,
		Setup: func(srv *webhook.Server) error {
			return audit.AddPeriodic(srv, cp.Config, framework.WebhookNamespace, time.Hour, 10, klog.Background().WithName("audit"))
		},
	})
	require.NoError(t, err)
	t.Cleanup(w.Stop)

	reports, err := dynamic.NewForConfig(cp.Config)
	require.NoError(t, err)
	var report *audit.PolicyReport
	require.NoError(t, wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		u, err := reports.Resource(audit.ReportGVR()).Namespace(ns).Get(ctx, audit.ReportName, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		report, err = audit.PolicyReportFrom(u)
		return err == nil, nil
	}), "the elected webhook replica writes the report")
	require.Equal(t, 1, report.Summary.Fail)
	require.Equal(t, "HM-DH-003", report.Results[0].Policy)

	lease, err := cp.Client.CoordinationV1().Leases(framework.WebhookNamespace).Get(ctx, "harbormaster-webhook", metav1.GetOptions{})
	require.NoError(t, err, "the audit runs under the webhook's lease")
	require.NotEmpty(t, ptr.Deref(lease.Spec.HolderIdentity, ""))
}
