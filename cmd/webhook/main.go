// Command webhook serves Harbormaster's admission webhooks: the mutating
// rules (overcommit, soft anti-affinity, host groups, dedicated hosts), the
// Rego governance policies with their decision log, and the validation of its
// own configuration and policy ConfigMaps.
package main

import (
	"flag"
	"fmt"
	"math"
	"os"
	"runtime/debug"
	"strings"

	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/harbormaster-dev/harbormaster/pkg/audit"
	"github.com/harbormaster-dev/harbormaster/pkg/decisionlog"
	"github.com/harbormaster-dev/harbormaster/pkg/webhook"
	"github.com/harbormaster-dev/harbormaster/policies"
)

func main() {
	opts := webhook.Options{Policies: policies.FS}
	flag.StringVar(&opts.Namespace, "namespace", envOr("POD_NAMESPACE", "harbormaster-system"), "the webhook's own namespace (never mutated; holds the configuration)")
	flag.StringVar(&opts.ConfigMapName, "config-map", "harbormaster-config", "name of the configuration ConfigMap (key config.yaml)")
	flag.StringVar(&opts.Host, "host", "", "address the webhook listens on (empty: all)")
	flag.IntVar(&opts.Port, "port", 9443, "port the webhook listens on")
	flag.StringVar(&opts.CertDir, "cert-dir", "/etc/harbormaster/certs", "directory with tls.crt and tls.key; reloaded when they change")
	flag.StringVar(&opts.MetricsAddr, "metrics-bind-address", ":8080", "Prometheus metrics address (0 disables)")
	flag.StringVar(&opts.PprofAddr, "pprof-bind-address", "", "address serving Go's /debug/pprof profiles (empty or 0: off); bind it to localhost, profiles reveal memory contents")
	flag.StringVar(&opts.HealthAddr, "health-probe-bind-address", ":8081", "/healthz and /readyz address (0 disables)")
	flag.StringVar(&opts.PolicyConfigMapName, "policy-config-map", "harbormaster-policies", "name of the ConfigMap whose .rego keys replace the embedded policies while it exists")
	decisionStdout := flag.Bool("decision-log-stdout", true, "write the policy decision log (one JSON line per decision) to stdout")
	decisionFile := flag.String("decision-log-file", "", "also write the decision log to this file, rotated by size (empty: no file)")
	decisionMaxMB := flag.Int64("decision-log-max-size-mb", 100, "size at which the decision log file is rotated")
	auditInterval := flag.Duration("audit-interval", 0, "evaluate every pod against the policies this often and write PolicyReports (0: off); one replica, elected by lease, audits")
	auditMaxResults := flag.Int("audit-max-results-per-report", 100, "results kept per namespace's PolicyReport (the summary counts all)")
	decisionBackups := flag.Int("decision-log-max-backups", 5, "rotated decision log files kept")
	certRotation := flag.Bool("cert-rotation", false, "issue and rotate the serving certificate in --cert-secret and inject its CA into the webhook configurations (instead of cert-manager); --cert-dir must be that Secret's mount")
	certSecret := flag.String("cert-secret", "harbormaster-webhook-tls", "with --cert-rotation: the Secret in --namespace holding the CA and serving certificate")
	serviceName := flag.String("service-name", "harbormaster-webhook", "with --cert-rotation: the webhook Service the certificate is issued for")
	mutatingHooks := flag.String("mutating-webhook-configurations", "harbormaster-mutating", "with --cert-rotation: comma-separated MutatingWebhookConfigurations to inject the CA into")
	validatingHooks := flag.String("validating-webhook-configurations", "harbormaster-config,harbormaster-policy", "with --cert-rotation: comma-separated ValidatingWebhookConfigurations to inject the CA into")
	gcPercent := flag.Int("gc-percent", defaultGCPercent, "Go garbage collection target percentage (debug.SetGCPercent; Go's default is 100; negative: off, leaving GOMEMLIMIT to trigger collections), unless the GOGC environment variable is set; bound the larger heap with GOMEMLIMIT")
	klog.InitFlags(nil)
	flag.Parse()
	if set, err := collectorSetting(*gcPercent, os.Getenv("GOGC"), debug.SetMemoryLimit(-1)); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	} else if set {
		debug.SetGCPercent(*gcPercent)
	}
	if *certRotation {
		opts.CertRotation = &webhook.CertRotation{SecretName: *certSecret, ServiceName: *serviceName,
			MutatingWebhooks: splitList(*mutatingHooks), ValidatingWebhooks: splitList(*validatingHooks)}
	}

	log := klog.NewKlogr().WithName("harbormaster-webhook")
	ctrl.SetLogger(log)
	// --kubeconfig is registered by controller-runtime; empty means
	// in-cluster.
	restConfig, err := ctrl.GetConfig()
	if err != nil {
		exit(err)
	}
	dlOpts := decisionlog.Options{Metrics: decisionlog.NewMetrics(crmetrics.Registry)}
	if *decisionStdout {
		dlOpts.Writer = os.Stdout
	}
	if *decisionFile != "" {
		dlOpts.File = &decisionlog.FileOptions{Path: *decisionFile, MaxBytes: *decisionMaxMB << 20, MaxBackups: *decisionBackups}
	}
	decisions, err := decisionlog.New(dlOpts)
	if err != nil {
		exit(err)
	}
	defer func() { _ = decisions.Close() }()
	opts.DecisionLog = decisions
	opts.LeaderElection = *auditInterval > 0
	srv, err := webhook.NewServer(restConfig, opts, log)
	if err != nil {
		exit(err)
	}
	if *auditInterval > 0 {
		if err := audit.AddPeriodic(srv, restConfig, opts.Namespace, *auditInterval, *auditMaxResults, log.WithName("audit")); err != nil {
			exit(err)
		}
	}
	log.Info("Starting", "namespace", opts.Namespace, "configMap", opts.ConfigMapName, "port", opts.Port)
	if err := srv.Manager.Start(ctrl.SetupSignalHandler()); err != nil {
		_ = decisions.Close()
		exit(err)
	}
}

// defaultGCPercent collects garbage 4x less often than Go's default.
// Policy evaluation allocates about 130 KB per admission request, and each
// collection cycle slows the evaluations it overlaps: fewer cycles keep the
// evaluation latency's tail short (docs/benchmarks.md, "Policy
// evaluation"), for a heap up to 5x the live data instead of 2x.
const defaultGCPercent = 400

// collectorSetting reports whether --gc-percent applies: not when the
// GOGC environment variable is set (it wins, as documented), and an error
// when the flag turns collection off with no memory limit (GOMEMLIMIT)
// to trigger one: the heap would grow without bound.
func collectorSetting(gcPercent int, gogcEnv string, memoryLimit int64) (bool, error) {
	if gogcEnv != "" {
		return false, nil
	}
	if gcPercent < 0 && memoryLimit == math.MaxInt64 {
		return false, fmt.Errorf("--gc-percent=%d turns garbage collection off until the heap reaches GOMEMLIMIT, which is not set", gcPercent)
	}
	return true, nil
}

func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func envOr(key, fallback string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return fallback
}

func exit(err error) {
	fmt.Fprintln(os.Stderr, "harbormaster-webhook:", err)
	os.Exit(1)
}
