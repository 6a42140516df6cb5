package framework

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	certutil "k8s.io/client-go/util/cert"
	"k8s.io/klog/v2"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/harbormaster-dev/harbormaster/pkg/decisionlog"
	"github.com/harbormaster-dev/harbormaster/pkg/webhook"
	"github.com/harbormaster-dev/harbormaster/policies"
)

// Names the webhook uses in tests, as in manifests/.
const (
	WebhookNamespace    = "harbormaster-system"
	ConfigMapName       = "harbormaster-config"
	PolicyConfigMapName = "harbormaster-policies"
)

// RunningWebhook is Harbormaster's webhook served by the test process on
// 127.0.0.1 with a generated certificate.
type RunningWebhook struct {
	Server   *webhook.Server
	Registry *prometheus.Registry
	URL      string
	CABundle []byte
	// DecisionLog holds the decision log lines written so far.
	DecisionLog *SyncBuffer
	cancel      context.CancelFunc
	done        chan error
	// stopped are closed when the webhook's helper goroutines end.
	stopped []chan struct{}
}

// SyncBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// Lines returns the complete lines written so far.
func (b *SyncBuffer) Lines() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Split(strings.TrimSuffix(b.buf.String(), "\n"), "\n")
}

// ServingCert writes a self-signed certificate for 127.0.0.1 as tls.crt and
// tls.key into dir and returns the CA bundle clients must trust.
func ServingCert(dir string) ([]byte, error) {
	certPEM, keyPEM, err := certutil.GenerateSelfSignedCertKey("127.0.0.1", []net.IP{net.ParseIP("127.0.0.1")}, nil)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "tls.crt"), certPEM, 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "tls.key"), keyPEM, 0o600); err != nil {
		return nil, err
	}
	return certPEM, nil
}

// StartWebhook creates the webhook's namespace and configuration ConfigMap
// (configYAML; empty means none), serves the webhook in-process until Stop,
// waits until it is ready when a configuration was given, and installs the
// webhook configurations from manifests/ pointed at it.
func StartWebhook(ctx context.Context, cp *ControlPlane, dir, configYAML string) (*RunningWebhook, error) {
	return StartWebhookWith(ctx, cp, dir, configYAML, WebhookOptions{})
}

// WebhookOptions are the optional parts of a test webhook.
type WebhookOptions struct {
	// LeaderElection turns on the lease that gates singletons; Setup runs
	// on the server before it starts (e.g. to add the periodic audit).
	LeaderElection bool
	Setup          func(*webhook.Server) error
	// SkipInstall serves without installing the webhook configurations,
	// for replicas installed together behind a load balancer (InstallAt).
	SkipInstall bool
	// ReuseCert serves the certificate already in dir (another replica's).
	ReuseCert bool
	// CertRotation has the webhook issue its own certificate into a Secret
	// and inject the CA; the webhook is reached at https://localhost, and
	// a stand-in for the kubelet copies the Secret into dir as a Secret
	// volume would. The webhook configurations are installed without a CA
	// before the webhook starts, as the manifests install them.
	CertRotation *webhook.CertRotation
	// RestConfig is the webhook's own connection (e.g. impersonating its
	// ServiceAccount); nil means the control plane's admin.
	RestConfig *rest.Config
}

// StartWebhookWith is StartWebhook with options.
func StartWebhookWith(ctx context.Context, cp *ControlPlane, dir, configYAML string, wopts WebhookOptions) (*RunningWebhook, error) {
	if err := EnsureNamespace(ctx, cp, WebhookNamespace); err != nil {
		return nil, err
	}
	if configYAML != "" {
		if err := ApplyConfig(ctx, cp, configYAML); err != nil {
			return nil, err
		}
	}
	var (
		caBundle []byte
		err      error
	)
	switch {
	case wopts.CertRotation != nil:
	case wopts.ReuseCert:
		caBundle, err = os.ReadFile(filepath.Join(dir, "tls.crt"))
	default:
		caBundle, err = ServingCert(dir)
	}
	if err != nil {
		return nil, err
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	url := fmt.Sprintf("https://127.0.0.1:%d", port)
	if wopts.CertRotation != nil {
		// As manifests/components/cert-rotation ships them: an empty
		// Secret, webhook configurations without a CA.
		url = fmt.Sprintf("https://localhost:%d", port)
		secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: wopts.CertRotation.SecretName, Namespace: WebhookNamespace}}
		if _, err := cp.Client.CoreV1().Secrets(WebhookNamespace).Create(ctx, secret, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return nil, err
		}
		if err := InstallWebhookConfigurations(ctx, cp, url, nil); err != nil {
			return nil, err
		}
	}
	healthPort, err := FreePort()
	if err != nil {
		return nil, err
	}
	// controller-runtime's own components (cert watcher, manager) log through
	// its global root logger; route it to klog as cmd/webhook does.
	ctrllog.SetLogger(klog.Background())
	reg := prometheus.NewRegistry()
	decisions := &SyncBuffer{}
	decisionLog, err := decisionlog.New(decisionlog.Options{Writer: decisions, Metrics: decisionlog.NewMetrics(reg)})
	if err != nil {
		return nil, err
	}
	restConfig := cp.Config
	if wopts.RestConfig != nil {
		restConfig = wopts.RestConfig
	}
	srv, err := webhook.NewServer(restConfig, webhook.Options{
		Namespace: WebhookNamespace, ConfigMapName: ConfigMapName, PolicyConfigMapName: PolicyConfigMapName,
		Policies: policies.FS, DecisionLog: decisionLog,
		Host: "127.0.0.1", Port: port, CertDir: dir,
		MetricsAddr: "0", HealthAddr: fmt.Sprintf("127.0.0.1:%d", healthPort),
		Registerer: reg, LeaderElection: wopts.LeaderElection, CertRotation: wopts.CertRotation,
	}, klog.Background().WithName("webhook"))
	if err != nil {
		return nil, err
	}
	if wopts.Setup != nil {
		if err := wopts.Setup(srv); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	w := &RunningWebhook{Server: srv, Registry: reg, URL: url, CABundle: caBundle,
		DecisionLog: decisions, cancel: cancel, done: make(chan error, 1)}
	if wopts.CertRotation != nil {
		synced := make(chan struct{})
		go func() {
			defer close(synced)
			syncSecretVolume(ctx, cp, WebhookNamespace, wopts.CertRotation.SecretName, dir)
		}()
		w.stopped = append(w.stopped, synced)
	}
	go func() { w.done <- srv.Manager.Start(ctx) }()

	if configYAML != "" {
		readyz := fmt.Sprintf("http://127.0.0.1:%d/readyz", healthPort)
		if err := waitHTTP200(ctx, readyz, 60*time.Second); err != nil {
			w.Stop()
			return nil, fmt.Errorf("webhook not ready: %w", err)
		}
	}
	if wopts.SkipInstall {
		return w, nil
	}
	if wopts.CertRotation != nil {
		if err := waitEffective(ctx, cp, []*RunningWebhook{w}); err != nil {
			w.Stop()
			return nil, fmt.Errorf("webhook with rotated certificate not called: %w", err)
		}
		return w, nil
	}
	if err := w.install(ctx, cp); err != nil {
		w.Stop()
		return nil, err
	}
	return w, nil
}

// RunWebhook is StartWebhook for tests, stopped at test end.
func RunWebhook(t testing.TB, cp *ControlPlane, configYAML string) *RunningWebhook {
	t.Helper()
	w, err := StartWebhook(context.Background(), cp, t.TempDir(), configYAML)
	if err != nil {
		t.Fatalf("webhook: %v", err)
	}
	t.Cleanup(w.Stop)
	return w
}

// Stop stops serving. The webhook configurations stay installed, as they
// would in a cluster whose webhook pods are gone.
func (w *RunningWebhook) Stop() {
	w.cancel()
	select {
	case <-w.done:
	case <-time.After(30 * time.Second):
	}
	for _, stopped := range w.stopped {
		<-stopped
	}
}

// syncSecretVolume stands in for the kubelet's Secret volume: it writes
// the Secret's tls.crt and tls.key into dir whenever they change, each file
// replaced atomically, until ctx ends.
func syncSecretVolume(ctx context.Context, cp *ControlPlane, namespace, name, dir string) {
	var last map[string][]byte
	_ = wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		secret, err := cp.Client.CoreV1().Secrets(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil || len(secret.Data["tls.crt"]) == 0 || len(secret.Data["tls.key"]) == 0 {
			return false, nil
		}
		if maps.EqualFunc(last, secret.Data, bytes.Equal) {
			return false, nil
		}
		for _, key := range []string{"tls.key", "tls.crt"} {
			tmp := filepath.Join(dir, "."+key+".tmp")
			if os.WriteFile(tmp, secret.Data[key], 0o600) != nil || os.Rename(tmp, filepath.Join(dir, key)) != nil {
				return false, nil
			}
		}
		last = secret.Data
		return false, nil
	})
}

// install creates the webhook configurations of manifests/base/webhook,
// with each clientConfig pointed at the test process instead of the Service.
func (w *RunningWebhook) install(ctx context.Context, cp *ControlPlane) error {
	return InstallAt(ctx, cp, w.URL, w.CABundle, w)
}

// InstallAt installs the webhook configurations of manifests/ pointed at
// url (a replica, or a load balancer in front of replicas) and waits until
// the API server calls one of the replicas.
func InstallAt(ctx context.Context, cp *ControlPlane, url string, caBundle []byte, replicas ...*RunningWebhook) error {
	if err := InstallWebhookConfigurations(ctx, cp, url, caBundle); err != nil {
		return err
	}
	return waitEffective(ctx, cp, replicas)
}

// waitEffective returns once the API server calls the webhook. It picks up
// new webhook configurations asynchronously, and a test that stops the
// webhook right after starting it would otherwise see requests admitted
// without any webhook. The probe is a dry-run pod in "default", which the
// pods webhook (failurePolicy Ignore) receives.
func waitEffective(ctx context.Context, cp *ControlPlane, replicas []*RunningWebhook) error {
	count := func() float64 {
		var n float64
		for _, r := range replicas {
			n += r.admissionCount()
		}
		return n
	}
	before := count()
	probe := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "webhook-probe-"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "probe", Image: "registry.k8s.io/pause:3.10"}}},
	}
	return wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		// The result does not matter (policies may deny it), only that the
		// webhook saw it.
		_, _ = cp.Client.CoreV1().Pods(metav1.NamespaceDefault).Create(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return count() > before, nil
	})
}

// admissionCount sums harbormaster_admission_requests_total.
func (w *RunningWebhook) admissionCount() float64 {
	families, err := w.Registry.Gather()
	if err != nil {
		return 0
	}
	var total float64
	for _, f := range families {
		if f.GetName() != "harbormaster_admission_requests_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			total += m.GetCounter().GetValue()
		}
	}
	return total
}

func clientConfig(in admissionregistrationv1.WebhookClientConfig, base string, caBundle []byte) admissionregistrationv1.WebhookClientConfig {
	path := ""
	if in.Service != nil && in.Service.Path != nil {
		path = *in.Service.Path
	}
	url := base + path
	return admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: caBundle}
}

// DecodeManifests decodes every YAML document of a file into typed objects.
func DecodeManifests(path string) ([]any, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var objs []any
	for _, doc := range strings.Split(string(data), "\n---") {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode([]byte(doc), nil, nil)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		objs = append(objs, obj)
	}
	return objs, nil
}

// EnsureNamespace creates a namespace unless it exists.
func EnsureNamespace(ctx context.Context, cp *ControlPlane, name string) error {
	_, err := cp.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

// ApplyConfig creates or updates the configuration ConfigMap.
func ApplyConfig(ctx context.Context, cp *ControlPlane, configYAML string) error {
	cms := cp.Client.CoreV1().ConfigMaps(WebhookNamespace)
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: ConfigMapName, Namespace: WebhookNamespace},
		Data:       map[string]string{"config.yaml": configYAML},
	}
	existing, err := cms.Get(ctx, ConfigMapName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = cms.Create(ctx, cm, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return err
	}
	existing.Data = cm.Data
	_, err = cms.Update(ctx, existing, metav1.UpdateOptions{})
	return err
}

func waitHTTP200(ctx context.Context, url string, timeout time.Duration) error {
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12}}}
	return wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		resp, err := client.Get(url)
		if err != nil {
			return false, nil
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
}
