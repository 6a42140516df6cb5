package framework

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
)

// admissionRequestsMetric counts the admission requests a webhook served.
const admissionRequestsMetric = "harbormaster_admission_requests_total"

// InstallAtProcess installs the webhook configurations of manifests/
// pointed at url, where a webhook runs as a process of its own (the binary
// of cmd/webhook), and waits until the API server calls it: until
// harbormaster_admission_requests_total on metricsURL (the process's
// Prometheus endpoint, e.g. http://127.0.0.1:8080/metrics) grows.
func InstallAtProcess(ctx context.Context, cp *ControlPlane, url string, caBundle []byte, metricsURL string) error {
	before, err := AdmissionRequests(ctx, metricsURL)
	if err != nil {
		return fmt.Errorf("reading the webhook's metrics: %w", err)
	}
	if err := InstallWebhookConfigurations(ctx, cp, url, caBundle); err != nil {
		return err
	}
	return waitCalled(ctx, cp, func(ctx context.Context) bool {
		n, err := AdmissionRequests(ctx, metricsURL)
		return err == nil && n > before
	})
}

// InstallWebhookConfigurations creates the webhook configurations of
// manifests/base/webhook with each clientConfig pointed at url instead of
// the Service, trusting caBundle. The API server picks them up
// asynchronously: InstallAt and InstallAtProcess also wait for that.
func InstallWebhookConfigurations(ctx context.Context, cp *ControlPlane, url string, caBundle []byte) error {
	root, err := RepoRoot()
	if err != nil {
		return err
	}
	objs, err := DecodeManifests(filepath.Join(root, "manifests", "base", "webhook", "webhook-configurations.yaml"))
	if err != nil {
		return err
	}
	for _, obj := range objs {
		switch o := obj.(type) {
		case *admissionregistrationv1.MutatingWebhookConfiguration:
			for i := range o.Webhooks {
				o.Webhooks[i].ClientConfig = clientConfig(o.Webhooks[i].ClientConfig, url, caBundle)
			}
			if _, err := cp.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, o, metav1.CreateOptions{}); err != nil {
				return err
			}
		case *admissionregistrationv1.ValidatingWebhookConfiguration:
			for i := range o.Webhooks {
				o.Webhooks[i].ClientConfig = clientConfig(o.Webhooks[i].ClientConfig, url, caBundle)
			}
			if _, err := cp.Client.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, o, metav1.CreateOptions{}); err != nil {
				return err
			}
		}
	}
	return nil
}

// waitCalled sends dry-run pods to "default", which the pods webhook
// (failurePolicy Ignore) receives, until called reports the webhook saw
// one. Whether the pod would be admitted does not matter.
func waitCalled(ctx context.Context, cp *ControlPlane, called func(context.Context) bool) error {
	probe := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "webhook-probe-"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "probe", Image: "registry.k8s.io/pause:3.10"}}},
	}
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		_, _ = cp.Client.CoreV1().Pods(metav1.NamespaceDefault).Create(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return called(ctx), nil
	})
	if err != nil {
		return fmt.Errorf("the API server does not call the webhook: %w", err)
	}
	return nil
}

// AdmissionRequests reads harbormaster_admission_requests_total, summed
// over its labels, from a webhook's Prometheus endpoint.
func AdmissionRequests(ctx context.Context, metricsURL string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, metricsURL, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: %s", metricsURL, resp.Status)
	}
	// The text exposition format: one sample a line, `name{labels} value`;
	// the counter has no samples until the first request.
	var total float64
	lines := bufio.NewScanner(resp.Body)
	for lines.Scan() {
		line := lines.Text()
		if !strings.HasPrefix(line, admissionRequestsMetric+"{") && !strings.HasPrefix(line, admissionRequestsMetric+" ") {
			continue
		}
		fields := strings.Fields(line)
		v, err := strconv.ParseFloat(fields[len(fields)-1], 64)
		if err != nil {
			return 0, fmt.Errorf("%s: sample %q: %w", metricsURL, line, err)
		}
		total += v
	}
	return total, lines.Err()
}
