package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"

	"github.com/harbormaster-dev/harbormaster/pkg/config"
	"github.com/harbormaster-dev/harbormaster/pkg/webhook"
	"github.com/harbormaster-dev/harbormaster/test/framework"
)

// TestSelfManagedCertificateRotation runs the webhook with --cert-rotation
// (manifests/components/cert-rotation) on a real API server: it issues its
// certificate into the Secret, injects the CA into every webhook
// configuration, and the API server calls it with that CA. When the Secret
// loses its certificate, a new CA and certificate are issued and injected,
// the served certificate follows, and admission keeps working.
func TestSelfManagedCertificateRotation(t *testing.T) {
	cp := framework.Start(t, framework.Options{})
	ctx := t.Context()
	root, err := framework.RepoRoot()
	require.NoError(t, err)
	rotation := &webhook.CertRotation{
		SecretName: "harbormaster-webhook-tls", ServiceName: "harbormaster-webhook", ExtraDNSNames: []string{"localhost"},
		MutatingWebhooks: []string{"harbormaster-mutating"}, ValidatingWebhooks: []string{"harbormaster-config", "harbormaster-policy"},
		CheckInterval: time.Second,
	}
	// The webhook runs as its ServiceAccount with exactly the RBAC the
	// manifests grant it: base plus the cert-rotation component.
	require.NoError(t, framework.EnsureNamespace(ctx, cp, framework.WebhookNamespace))
	for _, file := range []string{"manifests/base/webhook/rbac.yaml", "manifests/components/cert-rotation/rbac.yaml"} {
		out, err := kubectl(t, cp, nil, "apply", "-f", filepath.Join(root, file))
		require.NoError(t, err, out)
	}
	asServiceAccount := rest.CopyConfig(cp.Config)
	asServiceAccount.Impersonate = rest.ImpersonationConfig{
		UserName: "system:serviceaccount:harbormaster-system:harbormaster-webhook",
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:harbormaster-system", "system:authenticated"},
	}
	w, err := framework.StartWebhookWith(ctx, cp, t.TempDir(), admissionConfig, framework.WebhookOptions{
		CertRotation: rotation, RestConfig: asServiceAccount})
	require.NoError(t, err, "the webhook serves with its own certificate and the API server calls it")
	t.Cleanup(w.Stop)

	secrets := cp.Client.CoreV1().Secrets(framework.WebhookNamespace)
	secret, err := secrets.Get(ctx, rotation.SecretName, metav1.GetOptions{})
	require.NoError(t, err)
	firstCA := secret.Data["ca.crt"]
	require.NotEmpty(t, firstCA)
	leaf := parseCert(t, secret.Data["tls.crt"])
	require.Contains(t, leaf.DNSNames, "harbormaster-webhook.harbormaster-system.svc")
	require.NoError(t, leaf.CheckSignatureFrom(parseCert(t, firstCA)), "the serving certificate is signed by the CA in the Secret")
	requireCAInjected(t, cp, firstCA)
	requireServedCertSignedBy(t, w.URL, firstCA)

	ns := "team-a-certs"
	_, err = cp.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{config.LabelTenant: "team-a"}}}, metav1.CreateOptions{})
	require.NoError(t, err)
	requireMutated(t, cp, ns, "before")

	// The Secret loses its certificate (wiped by hand, restored from an
	// old backup): the rotator issues a new CA within its check interval.
	secret.Data = nil
	_, err = secrets.Update(ctx, secret, metav1.UpdateOptions{})
	require.NoError(t, err)
	var newCA []byte
	require.NoError(t, wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		s, err := secrets.Get(ctx, rotation.SecretName, metav1.GetOptions{})
		if err != nil || len(s.Data["ca.crt"]) == 0 || bytes.Equal(s.Data["ca.crt"], firstCA) {
			return false, nil
		}
		newCA = s.Data["ca.crt"]
		return true, nil
	}), "a new CA and certificate are issued")
	requireCAInjected(t, cp, newCA)
	requireServedCertSignedBy(t, w.URL, newCA)
	requireMutated(t, cp, ns, "after")
}

func parseCert(t *testing.T, pemBytes []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(pemBytes)
	require.NotNil(t, block, "PEM certificate")
	cert, err := x509.ParseCertificate(block.Bytes)
	require.NoError(t, err)
	return cert
}

// requireCAInjected waits until every webhook of the three configurations
// carries ca as its caBundle.
func requireCAInjected(t *testing.T, cp *framework.ControlPlane, ca []byte) {
	t.Helper()
	admissionregistration := cp.Client.AdmissionregistrationV1()
	require.NoError(t, wait.PollUntilContextTimeout(t.Context(), 200*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		var bundles [][]byte
		m, err := admissionregistration.MutatingWebhookConfigurations().Get(ctx, "harbormaster-mutating", metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		for _, h := range m.Webhooks {
			bundles = append(bundles, h.ClientConfig.CABundle)
		}
		for _, name := range []string{"harbormaster-config", "harbormaster-policy"} {
			v, err := admissionregistration.ValidatingWebhookConfigurations().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, nil
			}
			for _, h := range v.Webhooks {
				bundles = append(bundles, h.ClientConfig.CABundle)
			}
		}
		for _, b := range bundles {
			if !bytes.Equal(b, ca) {
				return false, nil
			}
		}
		return len(bundles) >= 3, nil
	}), "the CA is injected into every webhook")
}

// requireServedCertSignedBy waits until the webhook serves a certificate
// that verifies against ca for the name the API server dials.
func requireServedCertSignedBy(t *testing.T, webhookURL string, ca []byte) {
	t.Helper()
	u, err := url.Parse(webhookURL)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(ca))
	require.NoError(t, wait.PollUntilContextTimeout(t.Context(), 200*time.Millisecond, 60*time.Second, true, func(context.Context) (bool, error) {
		conn, err := tls.Dial("tcp", u.Host, &tls.Config{RootCAs: pool, ServerName: u.Hostname(), MinVersion: tls.VersionTLS12})
		if err != nil {
			return false, nil
		}
		_ = conn.Close()
		return true, nil
	}), "the webhook serves a certificate signed by the current CA")
}

// requireMutated creates a limit-only tenant pod through the API server and
// requires the webhook's overcommit (cpu ratio 2) on it.
func requireMutated(t *testing.T, cp *framework.ControlPlane, ns, name string) {
	t.Helper()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: limitOnly("2", "1Gi")}
	var created *corev1.Pod
	require.NoError(t, wait.PollUntilContextTimeout(t.Context(), 200*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		// Until the API server picks up a newly injected CA, the call may
		// fail TLS; the pods webhook ignores failures, so check the result.
		p, err := cp.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			return false, nil
		}
		created = p
		return p.Annotations[config.AnnotationOvercommit] != "", nil
	}), "the API server calls the webhook")
	got := created.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU]
	require.Zero(t, got.Cmp(resource.MustParse("1")), "cpu request 2/2 = 1, got %s", got.String())
}
