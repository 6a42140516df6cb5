// Command webhook serves Harbormaster's admission webhooks: the mutating
// rules (overcommit, soft anti-affinity, host groups, dedicated hosts) and
// the validation of its own configuration ConfigMap.
package main

import (
	"flag"
	"fmt"
	"os"

	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/harbormaster-dev/harbormaster/pkg/webhook"
)

func main() {
	opts := webhook.Options{}
	flag.StringVar(&opts.Namespace, "namespace", envOr("POD_NAMESPACE", "harbormaster-system"), "the webhook's own namespace (never mutated; holds the configuration)")
	flag.StringVar(&opts.ConfigMapName, "config-map", "harbormaster-config", "name of the configuration ConfigMap (key config.yaml)")
	flag.StringVar(&opts.Host, "host", "", "address the webhook listens on (empty: all)")
	flag.IntVar(&opts.Port, "port", 9443, "port the webhook listens on")
	flag.StringVar(&opts.CertDir, "cert-dir", "/etc/harbormaster/certs", "directory with tls.crt and tls.key; reloaded when they change")
	flag.StringVar(&opts.MetricsAddr, "metrics-bind-address", ":8080", "Prometheus metrics address (0 disables)")
	flag.StringVar(&opts.HealthAddr, "health-probe-bind-address", ":8081", "/healthz and /readyz address (0 disables)")
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig for out-of-cluster use (empty: in-cluster)")
	klog.InitFlags(nil)
	flag.Parse()

	log := klog.NewKlogr().WithName("harbormaster-webhook")
	ctrl.SetLogger(log)
	if *kubeconfig != "" {
		if err := os.Setenv("KUBECONFIG", *kubeconfig); err != nil {
			exit(err)
		}
	}
	restConfig, err := ctrl.GetConfig()
	if err != nil {
		exit(err)
	}
	srv, err := webhook.NewServer(restConfig, opts, log)
	if err != nil {
		exit(err)
	}
	log.Info("Starting", "namespace", opts.Namespace, "configMap", opts.ConfigMapName, "port", opts.Port)
	if err := srv.Manager.Start(ctrl.SetupSignalHandler()); err != nil {
		exit(err)
	}
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
