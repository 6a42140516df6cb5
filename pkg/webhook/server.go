package webhook

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"net/http"

	"github.com/go-logr/logr"
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
	// Registerer receives Harbormaster's metrics; nil means
	// controller-runtime's registry, which MetricsAddr serves.
	Registerer prometheus.Registerer
}

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
	// The embedded bundle is compiled and its tests run before serving: a
	// binary with broken policies fails at start, not at the first pod.
	embedded, err := policy.Load(context.Background(), opts.Policies, policyLoadOptions)
	if err != nil {
		return nil, fmt.Errorf("embedded policies: %w", err)
	}
	engine := policy.NewEngine(embedded, policy.EngineOptions{})
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
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
		Controller:                    crconfig.Controller{SkipNameValidation: ptr.To(true)},
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			// Only our own ConfigMaps are cached, not every ConfigMap of
			// the cluster.
			&corev1.ConfigMap{}: {Namespaces: map[string]cache.Config{opts.Namespace: {}}},
		}},
		WebhookServer: crwebhook.NewServer(crwebhook.Options{
			Host:    opts.Host,
			Port:    opts.Port,
			CertDir: opts.CertDir,
			TLSOpts: []func(*tls.Config){func(c *tls.Config) { c.MinVersion = tls.VersionTLS12 }},
		}),
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
	hooks := mgr.GetWebhookServer()
	hooks.Register(PathMutatePods, withRecover(&PodMutator{
		Store: store, View: view, OwnNamespace: opts.Namespace, Metrics: metrics, Decoder: decoder, Log: log.WithName(WebhookPods),
	}))
	hooks.Register(PathMutateDaemonSets, withRecover(&DaemonSetMutator{
		Store: store, View: view, OwnNamespace: opts.Namespace, Metrics: metrics, Decoder: decoder, Log: log.WithName(WebhookDaemonSets),
	}))
	hooks.Register(PathValidateConfig, withRecover(&ConfigValidator{
		Key: key, PolicyKey: policyKey, Metrics: metrics, Decoder: decoder, Log: log.WithName(WebhookConfig),
	}))
	hooks.Register(PathValidatePolicy, withRecover(&PolicyValidator{
		Store: store, Engine: engine, View: view, OwnNamespace: opts.Namespace, DecisionLog: opts.DecisionLog,
		Metrics: metrics, Log: log.WithName(WebhookPolicy),
	}))

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
func withRecover(h admission.Handler) *admission.Webhook {
	return &admission.Webhook{Handler: h, RecoverPanic: ptr.To(true)}
}
