package e2e

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/harbormaster-dev/harbormaster/test/framework"
)

// BenchmarkPodCreate creates pods through the real API server in a tenant
// namespace, first without Harbormaster's webhooks and then with them (Fail
// policy, the tenant path), on the same control plane in the same run. The
// ratio of the two is the admission overhead a user sees.
func BenchmarkPodCreate(b *testing.B) {
	cp := framework.Start(b, framework.Options{})
	ctx := b.Context()
	for _, ns := range []string{"without-webhook", "with-webhook"} {
		_, err := cp.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
			ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{"harbormaster.io/tenant": "team-a"}},
		}, metav1.CreateOptions{})
		if err != nil {
			b.Fatal(err)
		}
	}
	create := func(b *testing.B, ns string) {
		for b.Loop() {
			// Generated names: -count>1 runs the sub-benchmarks again.
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: "p-"}, Spec: limitOnly("2", "1Gi")}
			pod.Labels = map[string]string{"app.kubernetes.io/name": "web"}
			if _, err := cp.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("without-webhook", func(b *testing.B) { create(b, "without-webhook") })
	w, err := framework.StartWebhook(ctx, cp, b.TempDir(), admissionConfig)
	if err != nil {
		b.Fatal(err)
	}
	defer w.Stop()
	b.Run("with-webhook", func(b *testing.B) { create(b, "with-webhook") })
}
