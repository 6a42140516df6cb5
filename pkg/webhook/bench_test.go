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
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/stretchr/testify/require"
	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	certutil "k8s.io/client-go/util/cert"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
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
	// As cmd/webhook does before serving. Unset, controller-runtime's
	// delegating log sink keeps every request's logger (tens of MB after a
	// few thousand requests), and the growing heap made each collection
	// dearer for whichever handler ran later in the run.
	ctrllog.SetLogger(klog.NewKlogr())
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

func admissionReviewBody(tb testing.TB) []byte { return reviewBody(tb, minimalPod()) }

// minimalPod is a 2-container tenant pod with only what the rules read.
func minimalPod() *corev1.Pod {
	q := func(s string) resource.Quantity { return resource.MustParse(s) }
	return &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{GenerateName: "web-", Namespace: "web", Labels: map[string]string{"app.kubernetes.io/name": "web", "app.kubernetes.io/instance": "web-1"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{
			{Name: "app", Image: "nginx", Resources: corev1.ResourceRequirements{
				Limits: corev1.ResourceList{corev1.ResourceCPU: q("2"), corev1.ResourceMemory: q("2Gi")}, Requests: corev1.ResourceList{corev1.ResourceCPU: q("2"), corev1.ResourceMemory: q("2Gi")}}},
			{Name: "sidecar", Image: "envoy", Resources: corev1.ResourceRequirements{
				Limits: corev1.ResourceList{corev1.ResourceCPU: q("500m"), corev1.ResourceMemory: q("256Mi")}, Requests: corev1.ResourceList{corev1.ResourceCPU: q("500m"), corev1.ResourceMemory: q("256Mi")}}},
		}},
	}
}

// defaultedPod is the same pod as a Deployment's ReplicaSet creates it and
// the API server hands it to admission: owner reference, env, ports, probes,
// volume mounts, the service account token volume and every defaulted
// field.
func defaultedPod() *corev1.Pod {
	pod := minimalPod()
	pod.Labels["pod-template-hash"] = "7d9f8c6b5"
	pod.GenerateName = "web-7d9f8c6b5-"
	pod.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-7d9f8c6b5",
		UID: "6f1c2a9e-4b7d-4c1e-9a3f-2d8e5b7c1f0a", Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}}
	grace, tolerance := int64(30), int64(300)
	mode := int32(420)
	pod.Spec.Volumes = []corev1.Volume{{Name: "kube-api-access-x7k2p", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
		DefaultMode: &mode,
		Sources: []corev1.VolumeProjection{
			{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token", ExpirationSeconds: ptr.To(int64(3607))}},
			{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"},
				Items: []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}}},
			{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{{Path: "namespace",
				FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.namespace"}}}}},
		},
	}}}}
	probe := func(port string) *corev1.Probe {
		return &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString(port), Scheme: corev1.URISchemeHTTP}},
			TimeoutSeconds: 1, PeriodSeconds: 10, SuccessThreshold: 1, FailureThreshold: 3}
	}
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		c.Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: int32(8080 + i), Protocol: corev1.ProtocolTCP}}
		c.Env = []corev1.EnvVar{{Name: "LOG_LEVEL", Value: "info"}, {Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.name"}}}}
		c.VolumeMounts = []corev1.VolumeMount{{Name: "kube-api-access-x7k2p", ReadOnly: true, MountPath: "/var/run/secrets/kubernetes.io/serviceaccount"}}
		c.LivenessProbe, c.ReadinessProbe = probe("http"), probe("http")
		c.TerminationMessagePath, c.TerminationMessagePolicy = "/dev/termination-log", corev1.TerminationMessageReadFile
		c.ImagePullPolicy = corev1.PullIfNotPresent
	}
	pod.Spec.RestartPolicy, pod.Spec.DNSPolicy = corev1.RestartPolicyAlways, corev1.DNSClusterFirst
	pod.Spec.TerminationGracePeriodSeconds = &grace
	pod.Spec.ServiceAccountName, pod.Spec.DeprecatedServiceAccount = "default", "default"
	pod.Spec.SecurityContext = &corev1.PodSecurityContext{}
	pod.Spec.SchedulerName = "default-scheduler"
	pod.Spec.Tolerations = []corev1.Toleration{
		{Key: "node.kubernetes.io/not-ready", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: &tolerance},
		{Key: "node.kubernetes.io/unreachable", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: &tolerance},
	}
	pod.Spec.Priority, pod.Spec.EnableServiceLinks = ptr.To(int32(0)), ptr.To(true)
	pod.Spec.PreemptionPolicy = ptr.To(corev1.PreemptLowerPriority)
	pod.Status.Phase, pod.Status.QOSClass = corev1.PodPending, corev1.PodQOSGuaranteed
	return pod
}

func reviewBody(tb testing.TB, pod *corev1.Pod) []byte {
	raw, err := json.Marshal(pod)
	require.NoError(tb, err)
	review := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{UID: "u", Operation: admissionv1.Create, Namespace: "web",
			Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}, Resource: metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
			UserInfo: authenticationv1.UserInfo{Username: "system:serviceaccount:kube-system:replicaset-controller", UID: "0b4c6f1e",
				Groups: []string{"system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"}}},
	}
	review.Request.Object.Raw = raw
	body, err := json.Marshal(review)
	require.NoError(tb, err)
	return body
}

// BenchmarkServe is one admission round trip over TLS per iteration, for
// both pods, through the no-op handler (the baseline) and the pod mutator
// on the same server. Compare figures of the same run.
func BenchmarkServe(b *testing.B) {
	client, base := benchServer(b)
	for _, pod := range []struct {
		name string
		pod  *corev1.Pod
	}{{"pod=minimal", minimalPod()}, {"pod=defaulted", defaultedPod()}} {
		body := reviewBody(b, pod.pod)
		for _, path := range []string{"/noop", "/mutate-pods"} {
			b.Run(pod.name+"/handler="+strings.TrimPrefix(path, "/"), func(b *testing.B) {
				b.SetBytes(int64(len(body)))
				b.ReportAllocs()
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
			})
		}
	}
}

// BenchmarkPodMutatorHandle is the handler alone, without HTTP and TLS:
// decoding, the rules and the patch for the same requests as BenchmarkServe.
func BenchmarkPodMutatorHandle(b *testing.B) {
	view := fakeView{labels: map[string]map[string]string{"web": {config.LabelTenant: "team-a"}}}
	m := &PodMutator{Store: newTestStore(b), View: view, Decoder: decoder(b), Log: logr.Discard()}
	for _, pod := range []struct {
		name string
		pod  *corev1.Pod
	}{{"pod=minimal", minimalPod()}, {"pod=defaulted", defaultedPod()}} {
		var review admissionv1.AdmissionReview
		require.NoError(b, json.Unmarshal(reviewBody(b, pod.pod), &review))
		req := admission.Request{AdmissionRequest: *review.Request}
		b.Run(pod.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if resp := m.Handle(context.Background(), req); !resp.Allowed || len(resp.Patch) == 0 {
					b.Fatalf("unexpected response %+v", resp.Result)
				}
			}
		})
	}
}
