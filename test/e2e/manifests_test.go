package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/harbormaster-dev/harbormaster/pkg/schedulerapp"
	"github.com/harbormaster-dev/harbormaster/test/framework"
)

// kustomize renders a kustomization directory of manifests/ with the
// kubectl of bin/.
func kustomize(t *testing.T, dir string) []byte {
	t.Helper()
	root, err := framework.RepoRoot()
	require.NoError(t, err)
	out, err := exec.Command(filepath.Join(root, "bin", "kubectl"), "kustomize", filepath.Join(root, "manifests", dir)).Output()
	require.NoError(t, err, "kubectl kustomize manifests/%s", dir)
	return out
}

// thirdPartyCRDs stands in for the CRDs of cert-manager and the Prometheus
// Operator, which the production overlay uses: enough for the API server
// to accept their objects, not their full schemas.
const thirdPartyCRDs = `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: certificates.cert-manager.io}
spec:
  group: cert-manager.io
  scope: Namespaced
  names: {kind: Certificate, plural: certificates}
  versions:
  - {name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: issuers.cert-manager.io}
spec:
  group: cert-manager.io
  scope: Namespaced
  names: {kind: Issuer, plural: issuers}
  versions:
  - {name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: servicemonitors.monitoring.coreos.com}
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names: {kind: ServiceMonitor, plural: servicemonitors}
  versions:
  - {name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}
`

func kubectl(t *testing.T, cp *framework.ControlPlane, stdin []byte, args ...string) (string, error) {
	t.Helper()
	root, err := framework.RepoRoot()
	require.NoError(t, err)
	cmd := exec.CommandContext(t.Context(), filepath.Join(root, "bin", "kubectl"), append([]string{"--kubeconfig", cp.KubeconfigPath}, args...)...)
	cmd.Stdin = bytes.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestManifestsApplyWithServerSideDryRun sends every object of the
// kustomize base and of each overlay through the real API server's
// validation and admission with server-side dry-run, so a schema error in
// manifests/ fails CI.
func TestManifestsApplyWithServerSideDryRun(t *testing.T) {
	cp := framework.Start(t, framework.Options{})
	// Namespaced objects can only be dry-run into an existing namespace,
	// and custom resources need their CRDs established.
	require.NoError(t, framework.EnsureNamespace(t.Context(), cp, framework.WebhookNamespace))
	out, err := kubectl(t, cp, []byte(thirdPartyCRDs), "apply", "-f", "-")
	require.NoError(t, err, out)
	out, err = kubectl(t, cp, nil, "wait", "--for=condition=Established", "--timeout=60s",
		"crd/certificates.cert-manager.io", "crd/issuers.cert-manager.io", "crd/servicemonitors.monitoring.coreos.com")
	require.NoError(t, err, out)

	for _, dir := range []string{"base", "overlays/dev", "overlays/production", "overlays/production-cert-rotation"} {
		t.Run(dir, func(t *testing.T) {
			rendered := kustomize(t, dir)
			out, err := kubectl(t, cp, rendered, "apply", "--dry-run=server", "--server-side", "--field-manager=harbormaster-e2e", "-f", "-")
			require.NoError(t, err, "server-side dry-run:\n%s", out)

			// Every rendered object was accepted, none skipped.
			objects := strings.Count(string(rendered), "\n---\n") + 1
			require.Equal(t, objects, strings.Count(out, "serverside-applied (server dry run)"), "every object is applied:\n%s", out)
			for _, want := range []string{
				"mutatingwebhookconfiguration.admissionregistration.k8s.io/harbormaster-mutating",
				"validatingwebhookconfiguration.admissionregistration.k8s.io/harbormaster-policy",
				"deployment.apps/harbormaster-webhook",
				"deployment.apps/harbormaster-scheduler",
			} {
				require.Contains(t, out, want)
			}
		})
	}
}

// TestShippedSchedulerConfigSchedules runs the scheduler with the
// KubeSchedulerConfiguration of manifests/ (only the connection and leader
// election changed for the test process): it must decode, build every
// plugin it names from our registry, and place a pod. Its Prometheus is
// unreachable here, which must only make scores neutral.
func TestShippedSchedulerConfigSchedules(t *testing.T) {
	root, err := framework.RepoRoot()
	require.NoError(t, err)
	raw, err := os.ReadFile(filepath.Join(root, "manifests", "base", "scheduler", "config.yaml"))
	require.NoError(t, err)
	var cm corev1.ConfigMap
	require.NoError(t, yaml.UnmarshalStrict(raw, &cm))
	shipped := cm.Data["scheduler-config.yaml"]
	require.Contains(t, shipped, "schedulerName: "+schedulerapp.SchedulerName)

	cp := framework.Start(t, framework.Options{})
	require.NoError(t, framework.CreateNodes(t.Context(), cp.Client,
		framework.NodeSpec{Name: "n0", CPU: "8", Memory: "32Gi"}, framework.NodeSpec{Name: "n1", CPU: "8", Memory: "32Gi"}))

	// In-process schedulers must not lead-elect: kube-scheduler exits the
	// process when it loses the lease.
	cfg := strings.Replace(shipped, "leaderElect: true", "leaderElect: false", 1)
	cfg = strings.Replace(cfg, "kind: KubeSchedulerConfiguration\n",
		"kind: KubeSchedulerConfiguration\nclientConnection:\n  kubeconfig: "+cp.KubeconfigPath+"\n", 1)
	require.NotEqual(t, shipped, cfg)
	framework.RunScheduler(t, cfg)

	ns := "shipped-config"
	require.NoError(t, framework.EnsureNamespace(t.Context(), cp, ns))
	_, err = cp.Client.CoreV1().Pods(ns).Create(t.Context(), &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p"},
		Spec: func() corev1.PodSpec {
			s := limitOnly("1", "1Gi")
			s.SchedulerName = schedulerapp.SchedulerName
			return s
		}(),
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	require.NotEmpty(t, waitForScheduled(t, cp.Client, ns, "p", 60*time.Second))
}
