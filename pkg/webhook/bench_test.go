package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/stretchr/testify/require"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	certutil "k8s.io/client-go/util/cert"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/harbormaster-dev/harbormaster/pkg/config"
)

type noopHandler struct{}

func (noopHandler) Handle(context.Context, admission.Request) admission.Response {
	return admission.Allowed("")
}

// benchServer serves the pod mutator and a no-op handler on one real
// controller-runtime TLS server, so their latencies compare like for like.
func benchServer(tb testing.TB) (*http.Client, string) {
	tb.Helper()
	dir := tb.TempDir()
	certPEM, keyPEM, err := certutil.GenerateSelfSignedCertKey("127.0.0.1", []net.IP{net.ParseIP("127.0.0.1")}, nil)
	require.NoError(tb, err)
	require.NoError(tb, os.WriteFile(filepath.Join(dir, "tls.crt"), certPEM, 0o600))
	require.NoError(tb, os.WriteFile(filepath.Join(dir, "tls.key"), keyPEM, 0o600))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(tb, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(tb, l.Close())

	srv := crwebhook.NewServer(crwebhook.Options{Host: "127.0.0.1", Port: port, CertDir: dir})
	view := fakeView{labels: map[string]map[string]string{"web": {config.LabelTenant: "team-a"}}}
	srv.Register("/mutate-pods", withRecover(&PodMutator{Store: newTestStore(tb), View: view, Decoder: decoder(tb), Log: logr.Discard()}))
	srv.Register("/noop", withRecover(noopHandler{}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = srv.Start(ctx); close(done) }()
	tb.Cleanup(func() { cancel(); <-done })

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, MaxIdleConnsPerHost: 4,
	}}
	base := fmt.Sprintf("https://127.0.0.1:%d", port)
	require.Eventually(tb, func() bool {
		resp, err := client.Post(base+"/noop", "application/json", bytes.NewReader(admissionReviewBody(tb)))
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 10*time.Second, 20*time.Millisecond)
	return client, base
}

func admissionReviewBody(tb testing.TB) []byte {
	q := func(s string) resource.Quantity { return resource.MustParse(s) }
	pod := &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{GenerateName: "web-", Namespace: "web", Labels: map[string]string{"app.kubernetes.io/name": "web", "app.kubernetes.io/instance": "web-1"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{
			{Name: "app", Image: "nginx", Resources: corev1.ResourceRequirements{
				Limits: corev1.ResourceList{corev1.ResourceCPU: q("2"), corev1.ResourceMemory: q("2Gi")}, Requests: corev1.ResourceList{corev1.ResourceCPU: q("2"), corev1.ResourceMemory: q("2Gi")}}},
			{Name: "sidecar", Image: "envoy", Resources: corev1.ResourceRequirements{
				Limits: corev1.ResourceList{corev1.ResourceCPU: q("500m"), corev1.ResourceMemory: q("256Mi")}, Requests: corev1.ResourceList{corev1.ResourceCPU: q("500m"), corev1.ResourceMemory: q("256Mi")}}},
		}},
	}
	raw, err := json.Marshal(pod)
	require.NoError(tb, err)
	review := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{UID: "u", Operation: admissionv1.Create, Namespace: "web",
			Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}, Resource: metav1.GroupVersionResource{Version: "v1", Resource: "pods"}},
	}
	review.Request.Object.Raw = raw
	body, err := json.Marshal(review)
	require.NoError(tb, err)
	return body
}

func benchmarkServe(b *testing.B, path string) {
	client, base := benchServer(b)
	body := admissionReviewBody(b)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		resp, err := client.Post(base+path, "application/json", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
}

// BenchmarkServeMutatePods is one admission round trip over TLS through the
// pod mutator; compare with BenchmarkServeNoop from the same run.
func BenchmarkServeMutatePods(b *testing.B) { benchmarkServe(b, "/mutate-pods") }

// BenchmarkServeNoop is the baseline: the same server and request, a
// handler that allows without looking.
func BenchmarkServeNoop(b *testing.B) { benchmarkServe(b, "/noop") }

// BenchmarkPodMutatorHandle is the handler alone, without HTTP and TLS:
// decoding, the rules and the patch for the same request as the serve
// benchmarks.
func BenchmarkPodMutatorHandle(b *testing.B) {
	view := fakeView{labels: map[string]map[string]string{"web": {config.LabelTenant: "team-a"}}}
	m := &PodMutator{Store: newTestStore(b), View: view, Decoder: decoder(b), Log: logr.Discard()}
	var review admissionv1.AdmissionReview
	require.NoError(b, json.Unmarshal(admissionReviewBody(b), &review))
	req := admission.Request{AdmissionRequest: *review.Request}
	b.ReportAllocs()
	for b.Loop() {
		if resp := m.Handle(context.Background(), req); !resp.Allowed || len(resp.Patch) == 0 {
			b.Fatalf("unexpected response %+v", resp.Result)
		}
	}
}
