package webhook

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"time"

	"github.com/go-logr/logr"
	"github.com/open-policy-agent/cert-controller/pkg/rotator"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crconfig "sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/harbormaster-dev/harbormaster/internal/stack"
	"github.com/harbormaster-dev/harbormaster/pkg/configstore"
	"github.com/harbormaster-dev/harbormaster/pkg/decisionlog"
	"github.com/harbormaster-dev/harbormaster/pkg/policy"
)

// Paths the webhooks are served on; manifests/ and tests register these.
const (
	PathMutatePods       = "/mutate-pods"
	PathMutateDaemonSets = "/mutate-daemonsets"
	PathValidateConfig   = "/validate-config"
	PathValidatePolicy   = "/validate-policy"
)

// Options configure the webhook server.
type Options struct {
	// Namespace is the webhook's own namespace: never mutated, and where
	// the configuration ConfigMap lives.
	Namespace     string
	ConfigMapName string
	// PolicyConfigMapName names the ConfigMap whose .rego keys, when it
	// exists, replace the embedded policies.
	PolicyConfigMapName string
	// Policies is the embedded default policy bundle (policies.FS).
	Policies fs.FS
	// DecisionLog receives one line per policy decision; nil logs nothing.
	DecisionLog *decisionlog.Logger
	// LeaderElection elects one replica (lease harbormaster-webhook in
	// Namespace) for the runnables that must run once per cluster, such as
	// the periodic audit. Admission and the watchers run on every replica
	// regardless.
	LeaderElection bool
	// Host and Port the webhook listens on; CertDir holds tls.crt and
	// tls.key and is watched, so rotated certificates are picked up live.
	Host    string
	Port    int
	CertDir string
	// MetricsAddr serves Prometheus metrics ("0" disables);
	// HealthAddr serves /healthz and /readyz ("0" disables).
	MetricsAddr string
	HealthAddr  string
	// PprofAddr serves Go's /debug/pprof profiles ("" or "0" disables, the
	// default): for profiling admission where it runs.
	PprofAddr string
	// Registerer receives Harbormaster's metrics; nil means
	// controller-runtime's registry, which MetricsAddr serves.
	Registerer prometheus.Registerer
	// CertRotation, when set, makes the webhook issue and rotate its own
	// serving certificate instead of relying on cert-manager.
	CertRotation *CertRotation
}

// CertRotation is self-managed certificate rotation with
// github.com/open-policy-agent/cert-controller (as Gatekeeper does): every
// replica keeps a CA and a serving certificate valid in one Secret, renews
// them ahead of expiry, and injects the CA into the webhook configurations.
// The Secret must be mounted at CertDir: the kubelet delivers renewed files,
// and the webhook only starts serving once they are there.
type CertRotation struct {
	// SecretName is the Secret in Namespace holding the CA and the serving
	// certificate.
	SecretName string
	// ServiceName is the webhook's Service; the certificate names
	// <service>.<namespace>.svc and its other forms.
	ServiceName string
	// ExtraDNSNames are further names the certificate is valid for, e.g.
	// the host of a webhook reached by URL.
	ExtraDNSNames []string
	// MutatingWebhooks and ValidatingWebhooks name the webhook
	// configurations whose caBundle is kept current.
	MutatingWebhooks, ValidatingWebhooks []string
	// ServerCertDuration is the serving certificate's validity (0: one
	// year); it is renewed when LookaheadInterval (0: 90 days) remains, as
	// checked every CheckInterval (0: 12 hours). A Secret that lost its
	// certificate is refilled at the next check.
	ServerCertDuration, LookaheadInterval, CheckInterval time.Duration
}

func (c *CertRotation) validate() error {
	if c.SecretName == "" || c.ServiceName == "" {
		return errors.New("webhook: certificate rotation needs a secret and a service name")
	}
	if len(c.MutatingWebhooks)+len(c.ValidatingWebhooks) == 0 {
		return errors.New("webhook: certificate rotation needs the webhook configurations to inject the CA into")
	}
	return nil
}

// addCertRotator adds cert-controller's rotator to mgr; ready is closed once
// the certificate is mounted and the CA injected.
func addCertRotator(mgr ctrl.Manager, namespace, certDir string, c *CertRotation, ready chan struct{}) error {
	svc := c.ServiceName + "." + namespace
	var hooks []rotator.WebhookInfo
	for _, name := range c.MutatingWebhooks {
		hooks = append(hooks, rotator.WebhookInfo{Name: name, Type: rotator.Mutating})
	}
	for _, name := range c.ValidatingWebhooks {
		hooks = append(hooks, rotator.WebhookInfo{Name: name, Type: rotator.Validating})
	}
	return rotator.AddRotator(mgr, &rotator.CertRotator{
		SecretKey:      types.NamespacedName{Namespace: namespace, Name: c.SecretName},
		CertDir:        certDir,
		CAName:         "harbormaster-ca",
		CAOrganization: "harbormaster",
		DNSName:        svc + ".svc",
		ExtraDNSNames:  append([]string{c.ServiceName, svc, svc + ".svc.cluster.local"}, c.ExtraDNSNames...),
		IsReady:        ready,
		Webhooks:       hooks,
		// Every replica runs it: the Secret is updated with optimistic
		// concurrency, so one replica's certificate wins and the others
		// read it back; no replica waits for a lease to serve.
		RequireLeaderElection:  false,
		ServerCertDuration:     c.ServerCertDuration,
		LookaheadInterval:      c.LookaheadInterval,
		RotationCheckFrequency: c.CheckInterval,
		ControllerName:         "harbormaster-cert-rotator",
	})
}

// certGatedServer starts the webhook server only once the rotator reports
// the certificate mounted: the server fails to start without its files.
type certGatedServer struct {
	crwebhook.Server
	ready <-chan struct{}
}

func (s certGatedServer) Start(ctx context.Context) error {
	select {
	case <-s.ready:
	case <-ctx.Done():
		return nil
	}
	return s.Server.Start(ctx)
}

// NeedLeaderElection: every replica serves admission.
func (certGatedServer) NeedLeaderElection() bool { return false }

// Server is the assembled webhook: a controller-runtime manager serving the
// admission endpoints, watching the configuration, with its live store.
type Server struct {
	Manager ctrl.Manager
	Store   *configstore.Store
	Metrics *Metrics
	Engine  *policy.Engine
}

// NewServer wires the webhook server. Start it with Server.Manager.Start.
func NewServer(restConfig *rest.Config, opts Options, log logr.Logger) (*Server, error) {
	if opts.Namespace == "" || opts.ConfigMapName == "" || opts.PolicyConfigMapName == "" {
		return nil, errors.New("webhook: namespace, configmap and policy configmap names are required")
	}
	if opts.Policies == nil {
		return nil, errors.New("webhook: the embedded policy bundle is required")
	}
	if opts.CertRotation != nil {
		if err := opts.CertRotation.validate(); err != nil {
			return nil, err
		}
	}
	// The embedded bundle is compiled and its tests run before serving: a
	// binary with broken policies fails at start, not at the first pod.
	embedded, err := policy.Load(context.Background(), opts.Policies, policyLoadOptions)
	if err != nil {
		return nil, fmt.Errorf("embedded policies: %w", err)
	}
	log.WithName("policies").Info("Loaded the embedded policies", "revision", embedded.Revision(), "rules", len(embedded.Catalog()), "tests", embedded.TestsRun(), "omittedMembers", embedded.OmittedMembers())
	engine := policy.NewEngine(embedded, policy.EngineOptions{})
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	hooks := crwebhook.NewServer(crwebhook.Options{
		Host:    opts.Host,
		Port:    opts.Port,
		CertDir: opts.CertDir,
		TLSOpts: []func(*tls.Config){func(c *tls.Config) { c.MinVersion = tls.VersionTLS12 }},
	})
	managerHooks := hooks
	if opts.CertRotation != nil {
		// Added below behind the rotator's readiness, not by the manager.
		managerHooks = nil
	}
	mgr, err := ctrl.NewManager(restConfig, ctrl.Options{
		Scheme: scheme,
		Logger: log,
		// Every replica serves and watches the configuration itself; the
		// lease only gates cluster-wide singletons (the periodic audit).
		LeaderElection:                opts.LeaderElection,
		LeaderElectionID:              "harbormaster-webhook",
		LeaderElectionNamespace:       opts.Namespace,
		LeaderElectionReleaseOnCancel: true,
		Metrics:                       metricsserver.Options{BindAddress: opts.MetricsAddr},
		HealthProbeBindAddress:        opts.HealthAddr,
		PprofBindAddress:              opts.PprofAddr,
		Controller:                    crconfig.Controller{SkipNameValidation: ptr.To(true)},
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			// Only our own ConfigMaps are cached, not every ConfigMap of
			// the cluster.
			&corev1.ConfigMap{}: {Namespaces: map[string]cache.Config{opts.Namespace: {}}},
		}},
		WebhookServer: managerHooks,
	})
	if err != nil {
		return nil, fmt.Errorf("creating manager: %w", err)
	}
	reg := opts.Registerer
	if reg == nil {
		reg = crmetrics.Registry
	}
	metrics := NewMetrics(reg)
	store := configstore.New(log.WithName("config"), configstore.NewMetrics(reg))
	key := types.NamespacedName{Namespace: opts.Namespace, Name: opts.ConfigMapName}
	if err := setupConfigWatcher(mgr, key, store, log.WithName("config")); err != nil {
		return nil, err
	}
	policyKey := types.NamespacedName{Namespace: opts.Namespace, Name: opts.PolicyConfigMapName}
	policyMetrics := NewPolicyMetrics(reg)
	pw := &policyWatcher{reader: mgr.GetClient(), key: policyKey, engine: engine, embedded: embedded, metrics: policyMetrics, log: log.WithName("policies")}
	pw.install(embedded, "embedded")
	if err := setupPolicyWatcher(mgr, pw); err != nil {
		return nil, err
	}
	// Start the informers admission reads from with the manager, not lazily
	// at the first admission request.
	for _, obj := range []client.Object{&corev1.Namespace{}, &corev1.LimitRange{}} {
		if _, err := mgr.GetCache().GetInformer(context.Background(), obj); err != nil {
			return nil, fmt.Errorf("informer for %T: %w", obj, err)
		}
	}
	view := cachedView{cache: mgr.GetClient(), live: mgr.GetAPIReader()}
	decoder := admission.NewDecoder(scheme)
	if opts.CertRotation == nil {
		mgr.GetWebhookServer() // adds hooks to the manager
	} else {
		ready := make(chan struct{})
		if err := addCertRotator(mgr, opts.Namespace, opts.CertDir, opts.CertRotation, ready); err != nil {
			return nil, fmt.Errorf("certificate rotation: %w", err)
		}
		if err := mgr.Add(certGatedServer{Server: hooks, ready: ready}); err != nil {
			return nil, err
		}
	}
	hooks.Register(PathMutatePods, withRecover(&PodMutator{
		Store: store, View: view, OwnNamespace: opts.Namespace, Metrics: metrics, Decoder: decoder, Log: log.WithName(WebhookPods),
	}))
	hooks.Register(PathMutateDaemonSets, withRecover(&DaemonSetMutator{
		Store: store, View: view, OwnNamespace: opts.Namespace, Metrics: metrics, Decoder: decoder, Log: log.WithName(WebhookDaemonSets),
	}))
	hooks.Register(PathValidateConfig, withRecover(&ConfigValidator{
		Key: key, PolicyKey: policyKey, Metrics: metrics, Decoder: decoder, Log: log.WithName(WebhookConfig),
	}))
	hooks.Register(PathValidatePolicy, growStackFirst(withRecover(&PolicyValidator{
		Store: store, Engine: engine, View: view, OwnNamespace: opts.Namespace, DecisionLog: opts.DecisionLog,
		Metrics: metrics, Log: log.WithName(WebhookPolicy),
	}), policy.EvalStackBytes))

	if opts.HealthAddr != "0" {
		if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
			return nil, err
		}
		// Ready only once a configuration is loaded (defaults confine no
		// tenant) and TLS is being served.
		started := hooks.StartedChecker()
		if err := mgr.AddReadyzCheck("config-and-tls", func(req *http.Request) error {
			if !store.Loaded() {
				return fmt.Errorf("no valid configuration loaded from ConfigMap %s", key)
			}
			return started(req)
		}); err != nil {
			return nil, err
		}
	}
	return &Server{Manager: mgr, Store: store, Metrics: metrics, Engine: engine}, nil
}

// withRecover turns a panic in a handler into an error response; the
// process keeps serving.
// growStackFirst grows the request goroutine's stack by n bytes before h
// runs, once for decoding the review and evaluating the policies. Over
// HTTP/2 every request runs on a new goroutine, whose stack otherwise grew
// five times deep inside both: in the demo's webhook, a tenth of its CPU
// (package stack).
func growStackFirst(h http.Handler, n int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		stack.Grow(n)
		h.ServeHTTP(w, r)
	})
}

func withRecover(h admission.Handler) *admission.Webhook {
	return &admission.Webhook{Handler: h, RecoverPanic: ptr.To(true)}
}
