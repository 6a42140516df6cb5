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

// kustomizeBase renders manifests/base with the kubectl of bin/.
func kustomizeBase(t *testing.T) []byte {
	t.Helper()
	root, err := framework.RepoRoot()
	require.NoError(t, err)
	out, err := exec.Command(filepath.Join(root, "bin", "kubectl"), "kustomize", filepath.Join(root, "manifests", "base")).Output()
	require.NoError(t, err, "kubectl kustomize manifests/base")
	return out
}

// TestManifestsApplyWithServerSideDryRun sends every object of the
// kustomize base through the real API server's validation and admission
// with server-side dry-run, so a schema error in manifests/ fails CI.
func TestManifestsApplyWithServerSideDryRun(t *testing.T) {
	cp := framework.Start(t, framework.Options{})
	rendered := kustomizeBase(t)
	// Namespaced objects can only be dry-run into an existing namespace.
	require.NoError(t, framework.EnsureNamespace(t.Context(), cp, framework.WebhookNamespace))

	root, err := framework.RepoRoot()
	require.NoError(t, err)
	cmd := exec.Command(filepath.Join(root, "bin", "kubectl"), "--kubeconfig", cp.KubeconfigPath,
		"apply", "--dry-run=server", "--server-side", "--field-manager=harbormaster-e2e", "-f", "-")
	cmd.Stdin = bytes.NewReader(rendered)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "server-side dry-run:\n%s", out)

	// Every rendered object was accepted, none skipped.
	kinds := strings.Count(string(rendered), "\n---\n") + 1
	applied := strings.Count(string(out), "serverside-applied (server dry run)")
	require.Equal(t, kinds, applied, "every object is applied:\n%s", out)
	for _, want := range []string{
		"mutatingwebhookconfiguration.admissionregistration.k8s.io/harbormaster-mutating",
		"validatingwebhookconfiguration.admissionregistration.k8s.io/harbormaster-policy",
		"deployment.apps/harbormaster-webhook",
		"deployment.apps/harbormaster-scheduler",
	} {
		require.Contains(t, string(out), want)
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
