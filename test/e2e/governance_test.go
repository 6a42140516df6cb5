package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/harbormaster-dev/harbormaster/pkg/config"
	"github.com/harbormaster-dev/harbormaster/test/framework"
)

// governanceConfig gives team-a a registry allowlist and a GPU cap, and
// makes alice the only user allowed to opt pods out. Every rule keeps its
// declared enforcement.
var governanceConfig = strings.Replace(
	strings.Replace(admissionConfig[:strings.Index(admissionConfig, "policy:")],
		"team-a: {hostGroups: [general, batch], defaultHostGroup: general}",
		"team-a: {hostGroups: [general, batch], defaultHostGroup: general, maxGPUsPerPod: 1, allowedRegistries: [registry.k8s.io/]}", 1),
	"dedicatedPools:", "privileged: {users: [alice]}\ndedicatedPools:", 1)

// TestPoliciesRefuseEscapesAtAdmission sends every escape attempt through
// the real API server: each is refused by the rule that names it, a
// compliant pod is admitted, and every decision is in the decision log
// without secret values.
func TestPoliciesRefuseEscapesAtAdmission(t *testing.T) {
	env := startAdmissionEnvWith(t, false, governanceConfig)
	ctx := t.Context()
	c := env.cp.Client
	ns := env.namespace(t, "team-a-gov", "team-a")

	_, err := c.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "compliant"}, Spec: limitOnly("1", "1Gi")}, metav1.CreateOptions{})
	require.NoError(t, err, "a compliant tenant pod is admitted")

	gpu := func(n string) func(*corev1.Pod) {
		return func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources.Limits["nvidia.com/gpu"] = resource.MustParse(n)
		}
	}
	attempts := []struct {
		name   string
		mutate func(*corev1.Pod)
		rule   string
	}{
		{"node-name", func(p *corev1.Pod) { p.Spec.NodeName = "secure-b-0" }, "HM-HG-001"},
		{"foreign-group-selector", func(p *corev1.Pod) {
			p.Spec.NodeSelector = map[string]string{config.LabelHostGroup: "restricted"}
		}, "HM-HG-002"},
		{"wildcard-toleration", func(p *corev1.Pod) {
			p.Spec.Tolerations = []corev1.Toleration{{Operator: corev1.TolerationOpExists}}
		}, "HM-DH-003"},
		{"foreign-pool-toleration", func(p *corev1.Pod) {
			p.Spec.Tolerations = []corev1.Toleration{{Key: config.LabelDedicated, Operator: corev1.TolerationOpEqual, Value: "secure-b", Effect: corev1.TaintEffectNoSchedule}}
		}, "HM-DH-001"},
		{"no-limits", func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources = corev1.ResourceRequirements{}
			p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "TOKEN", Value: "s3cr3t-value"}}
		}, "HM-RS-001"},
		{"foreign-registry", func(p *corev1.Pod) { p.Spec.Containers[0].Image = "nginx:1.27" }, "HM-RG-001"},
		{"exempt-by-unprivileged-user", func(p *corev1.Pod) { p.Labels = map[string]string{config.LabelExempt: config.ExemptValue} }, "HM-OO-001"},
		{"too-many-gpus", gpu("2"), "HM-RS-002"},
	}
	for _, a := range attempts {
		t.Run(a.name, func(t *testing.T) {
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: a.name}, Spec: limitOnly("1", "1Gi")}
			a.mutate(pod)
			_, err := c.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
			require.Error(t, err)
			assert.True(t, apierrors.IsForbidden(err), "denied by admission: %v", err)
			assert.Contains(t, err.Error(), a.rule)
		})
	}

	// Workload objects are judged before any pod exists.
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "escaping"},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "escaping"}},
			Template: template(map[string]string{"app": "escaping"}, limitOnly("1", "1Gi")),
		},
	}
	dep.Spec.Template.Spec.Tolerations = []corev1.Toleration{{Operator: corev1.TolerationOpExists}}
	_, err = c.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{})
	require.Error(t, err)
	require.Contains(t, err.Error(), "HM-DH-003")

	// The privileged user may opt out.
	alice := impersonate(t, env.cp, "alice")
	_, err = alice.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "exempt-by-alice", Labels: map[string]string{config.LabelExempt: config.ExemptValue}},
		Spec:       limitOnly("1", "1Gi"),
	}, metav1.CreateOptions{})
	require.NoError(t, err)

	// A workload namespace must belong to a tenant.
	orphan := env.namespace(t, "no-tenant", "")
	_, err = c.CoreV1().Pods(orphan).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "orphan"}, Spec: limitOnly("1", "1Gi")}, metav1.CreateOptions{})
	require.Error(t, err)
	require.Contains(t, err.Error(), "HM-NS-001")

	// The decision log has one line per decision with its rule ids, and no
	// secret value.
	var denied, allowed int
	rules := map[string]bool{}
	for _, line := range env.webhook.DecisionLog.Lines() {
		require.NotContains(t, line, "s3cr3t-value")
		var d struct {
			DecisionID     string   `json:"decision_id"`
			BundleRevision string   `json:"bundle_revision"`
			ConfigRevision string   `json:"config_revision"`
			Result         string   `json:"result"`
			RuleIDs        []string `json:"rule_ids"`
			Tenant         string   `json:"tenant"`
			User           struct {
				Username string `json:"username"`
			} `json:"user"`
			Object struct {
				Namespace string `json:"namespace"`
				Name      string `json:"name"`
			} `json:"object"`
		}
		require.NoError(t, json.Unmarshal([]byte(line), &d), line)
		if d.Object.Namespace != ns {
			continue
		}
		require.NotEmpty(t, d.DecisionID)
		require.NotEmpty(t, d.BundleRevision)
		require.NotEmpty(t, d.ConfigRevision)
		require.Equal(t, "team-a", d.Tenant)
		require.NotEmpty(t, d.User.Username)
		switch d.Result {
		case "deny":
			denied++
			for _, id := range d.RuleIDs {
				rules[id] = true
			}
		case "allow":
			allowed++
		}
	}
	for _, a := range attempts {
		assert.True(t, rules[a.rule], "decision log names %s", a.rule)
	}
	assert.GreaterOrEqual(t, denied, len(attempts)+1)
	assert.GreaterOrEqual(t, allowed, 2)
}

// TestPolicyEnforcementOverrides switches rules to warn and dryrun through
// the ConfigMap: the request is admitted, warn rules reach the client as
// admission warnings, dryrun rules only the decision log.
func TestPolicyEnforcementOverrides(t *testing.T) {
	cfg := governanceConfig + "policy:\n  enforcement: {HM-RS-001: warn, HM-RG-001: dryrun}\n"
	env := startAdmissionEnvWith(t, false, cfg)
	ctx := t.Context()
	ns := env.namespace(t, "team-a-warn", "team-a")

	warnings := &warningRecorder{}
	restCfg := rest.CopyConfig(env.cp.Config)
	restCfg.WarningHandler = warnings
	c, err := kubernetes.NewForConfig(restCfg)
	require.NoError(t, err)
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "lenient"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "nginx:1.27"}}}}
	_, err = c.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	require.NoError(t, err)
	require.True(t, warnings.contains("HM-RS-001"), "warn rules reach the client: %v", warnings.all())
	require.False(t, warnings.contains("HM-RG-001"), "dryrun rules stay silent")

	found := false
	for _, line := range env.webhook.DecisionLog.Lines() {
		if strings.Contains(line, `"name":"lenient"`) {
			found = true
			require.Contains(t, line, `"result":"warn"`)
			require.Contains(t, line, "HM-RG-001", "dryrun violations are logged")
		}
	}
	require.True(t, found, "the decision is logged")
}

// TestPolicyBundleHotReload replaces the embedded policies through the
// policies ConfigMap: broken bundles and bundles whose tests fail are
// refused at write time, a bundle that slips past is rejected by the watcher
// with the last good one serving, and deleting the ConfigMap restores the
// embedded policies.
func TestPolicyBundleHotReload(t *testing.T) {
	env := startAdmissionEnvWith(t, false, governanceConfig)
	ctx := t.Context()
	c := env.cp.Client
	ns := env.namespace(t, "team-a-reload", "team-a")
	engine := env.webhook.Server.Engine
	embedded := engine.Bundle().Revision()

	cms := c.CoreV1().ConfigMaps(framework.WebhookNamespace)
	policyCM := func(files map[string]string) *corev1.ConfigMap {
		return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: framework.PolicyConfigMapName}, Data: files}
	}
	_, err := cms.Create(ctx, policyCM(map[string]string{"custom.rego": "package harbormaster.custom\n\ndeny contains v if {"}), metav1.CreateOptions{})
	require.Error(t, err, "a bundle that does not parse is refused")
	require.Contains(t, err.Error(), "custom.rego")
	_, err = cms.Create(ctx, policyCM(map[string]string{"custom.rego": customPolicy, "custom_test.rego": customPolicyFailingTest}), metav1.CreateOptions{})
	require.Error(t, err, "a bundle whose tests fail is refused")
	require.Contains(t, err.Error(), "test_forbidden_label_denied_twice")

	_, err = cms.Create(ctx, policyCM(map[string]string{"custom.rego": customPolicy, "custom_test.rego": customPolicyTest}), metav1.CreateOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return engine.Bundle().Revision() != embedded }, 20*time.Second, 50*time.Millisecond)
	custom := engine.Bundle().Revision()

	_, err = c.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "forbidden", Labels: map[string]string{"forbidden": "yes"}}, Spec: limitOnly("1", "1Gi"),
	}, metav1.CreateOptions{})
	require.Error(t, err)
	require.Contains(t, err.Error(), "HM-CU-001")
	_, err = c.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "from-anywhere"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "nginx:1.27", Resources: limitOnly("1", "1Gi").Containers[0].Resources}}},
	}, metav1.CreateOptions{})
	require.NoError(t, err, "the ConfigMap bundle replaces the embedded one (no registry rule)")

	// Without the validating webhook a broken bundle reaches the watcher.
	require.NoError(t, c.AdmissionregistrationV1().ValidatingWebhookConfigurations().Delete(ctx, "harbormaster-config", metav1.DeleteOptions{}))
	reloads := env.webhook.Registry
	rejectedBefore := policyReloads(t, reloads, "rejected")
	require.Eventually(t, func() bool {
		cm, err := cms.Get(ctx, framework.PolicyConfigMapName, metav1.GetOptions{})
		if err != nil {
			return false
		}
		cm.Data = map[string]string{"custom.rego": customPolicy, "custom_test.rego": customPolicyFailingTest}
		_, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
		return err == nil
	}, 20*time.Second, 200*time.Millisecond)
	require.Eventually(t, func() bool { return policyReloads(t, reloads, "rejected") > rejectedBefore }, 30*time.Second, 100*time.Millisecond)
	require.Equal(t, custom, engine.Bundle().Revision(), "the last good bundle keeps serving")

	require.NoError(t, cms.Delete(ctx, framework.PolicyConfigMapName, metav1.DeleteOptions{}))
	require.Eventually(t, func() bool { return engine.Bundle().Revision() == embedded }, 20*time.Second, 50*time.Millisecond,
		"deleting the ConfigMap restores the embedded policies")
}

const customPolicy = `package harbormaster.custom

# METADATA
# title: No forbidden label
# description: Pods must not carry the label "forbidden".
# custom:
#   id: HM-CU-001
#   severity: low
#   enforcement: deny
#   control: Test control for bundle reloads.
deny contains violation if {
	input.request.object.metadata.labels.forbidden
	violation := {"id": "HM-CU-001", "msg": "label forbidden is not allowed", "field": "metadata.labels.forbidden"}
}
`

const customPolicyTest = `package harbormaster.custom_test

import data.harbormaster.custom

test_forbidden_label_denied if {
	violations := custom.deny with input as {"request": {"object": {"metadata": {"labels": {"forbidden": "x"}}}}}
	count(violations) == 1
}
`

var customPolicyFailingTest = strings.Replace(
	strings.Replace(customPolicyTest, "count(violations) == 1", "count(violations) == 2", 1),
	"test_forbidden_label_denied", "test_forbidden_label_denied_twice", 1)

func policyReloads(t *testing.T, reg interface {
	Gather() ([]*dto.MetricFamily, error)
}, result string) float64 {
	t.Helper()
	families, err := reg.Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() != "harbormaster_policy_reloads_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// impersonate returns a client acting as user, bound to cluster-admin so
// only admission, not RBAC, decides.
func impersonate(t *testing.T, cp *framework.ControlPlane, user string) kubernetes.Interface {
	t.Helper()
	_, err := cp.Client.RbacV1().ClusterRoleBindings().Create(t.Context(), &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "e2e-" + user},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
	}, metav1.CreateOptions{})
	if !apierrors.IsAlreadyExists(err) {
		require.NoError(t, err)
	}
	// The authorizer sees the binding through an informer: wait until it
	// does, or a loaded machine fails the first request with Forbidden.
	require.NoError(t, wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		review, err := cp.Client.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User: user, Groups: []string{"system:authenticated"},
			ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: "create", Resource: "pods"},
		}}, metav1.CreateOptions{})
		return err == nil && review.Status.Allowed, nil
	}), "the binding of %s takes effect", user)
	cfg := rest.CopyConfig(cp.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: []string{"system:authenticated"}}
	c, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	return c
}

// warningRecorder collects the admission warnings the API server returns.
type warningRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warningRecorder) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, text)
}

func (w *warningRecorder) all() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.msgs...)
}

func (w *warningRecorder) contains(s string) bool {
	for _, m := range w.all() {
		if strings.Contains(m, s) {
			return true
		}
	}
	return false
}
