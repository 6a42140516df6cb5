package main

import (
	"context"
	_ "embed"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	gpuplugin "github.com/harbormaster-dev/harbormaster/pkg/plugins/gpu"
	"github.com/harbormaster-dev/harbormaster/pkg/plugins/loadaware"
	"github.com/harbormaster-dev/harbormaster/test/framework"
)

// kwokStages are the stages kwok plays on nodes and pods. A string, so
// nothing can change it.
//
//go:embed kwok-stages.yaml
var kwokStages string

// kwokNodeAnnotation marks the nodes kwok manages, as kwok's documentation
// does.
const kwokNodeAnnotation = "kwok.x-k8s.io/node"

// How long a component may take to become ready: a cold start on two busy
// cores.
const readyTimeout = 90 * time.Second

// webhookProcess is bin/harbormaster-webhook serving on 127.0.0.1.
type webhookProcess struct {
	*child
	url         string // what the webhook configurations call
	metricsURL  string
	pprofURL    string
	decisionLog string
}

// startWebhook applies the configuration ConfigMap, runs the webhook with
// a serving certificate generated for 127.0.0.1, waits until it is ready
// and installs the webhook configurations of manifests/ pointed at it.
func startWebhook(ctx context.Context, cp *framework.ControlPlane, binary, stateDir, logDir, configYAML string) (*webhookProcess, error) {
	if err := framework.EnsureNamespace(ctx, cp, framework.WebhookNamespace); err != nil {
		return nil, err
	}
	if err := framework.ApplyConfig(ctx, cp, configYAML); err != nil {
		return nil, err
	}
	certDir := filepath.Join(stateDir, "webhook-certs")
	if err := os.MkdirAll(certDir, 0o700); err != nil {
		return nil, err
	}
	caBundle, err := framework.ServingCert(certDir)
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(4)
	if err != nil {
		return nil, err
	}
	port, metricsPort, healthPort, pprofPort := ports[0], ports[1], ports[2], ports[3]
	decisionLog := filepath.Join(logDir, "decisions.log")
	c, err := startChild("harbormaster-webhook", filepath.Join(logDir, "webhook.log"), binary,
		"--kubeconfig="+cp.KubeconfigPath,
		"--namespace="+framework.WebhookNamespace,
		"--host=127.0.0.1",
		"--port="+strconv.Itoa(port),
		"--metrics-bind-address="+hostPort(metricsPort),
		"--health-probe-bind-address="+hostPort(healthPort),
		// Profiles of admission where it runs (hack/policylatency).
		"--pprof-bind-address="+hostPort(pprofPort),
		"--cert-dir="+certDir,
		// The decision log goes to its own file; the process log keeps
		// the webhook's own messages.
		"--decision-log-stdout=false",
		"--decision-log-file="+decisionLog,
	)
	if err != nil {
		return nil, err
	}
	w := &webhookProcess{child: c, url: "https://" + hostPort(port), metricsURL: "http://" + hostPort(metricsPort) + "/metrics",
		pprofURL: "http://" + hostPort(pprofPort) + "/debug/pprof/", decisionLog: decisionLog}
	// Ready once it has loaded the ConfigMap and its certificate.
	if err := c.waitHealthy(ctx, "http://"+hostPort(healthPort)+"/readyz", readyTimeout); err != nil {
		c.stop(10 * time.Second)
		return nil, err
	}
	if err := framework.InstallAtProcess(ctx, cp, w.url, caBundle, w.metricsURL); err != nil {
		c.stop(10 * time.Second)
		return nil, err
	}
	return w, nil
}

// schedulerProcess is bin/harbormaster-scheduler.
type schedulerProcess struct {
	*child
	configPath string
	url        string // its secure port: /metrics, /readyz
}

// startScheduler writes the scheduler's KubeSchedulerConfiguration and
// runs it until it is ready: informers synced and load known for every
// node.
func startScheduler(ctx context.Context, cp *framework.ControlPlane, binary, stateDir, logDir, prometheusURL string) (*schedulerProcess, error) {
	configPath := filepath.Join(stateDir, "scheduler-config.yaml")
	// The demo's scheduler is the cluster's only one, so it takes the
	// default profile name and places every controller's pods; alone, it
	// needs no leader election.
	config := cp.SchedulerConfig(corev1.DefaultSchedulerName, schedulerPlugins(prometheusURL), false)
	if err := os.WriteFile(configPath, []byte(config), 0o600); err != nil {
		return nil, err
	}
	ports, err := freePorts(1)
	if err != nil {
		return nil, err
	}
	c, err := startChild("harbormaster-scheduler", filepath.Join(logDir, "scheduler.log"), binary,
		"--config="+configPath,
		"--bind-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(ports[0]),
		"--authentication-kubeconfig="+cp.KubeconfigPath,
		"--authorization-kubeconfig="+cp.KubeconfigPath,
		// The test API server publishes no front-proxy CA to look up.
		"--authentication-skip-lookup",
		// /metrics without credentials, for the demo and whoever explores.
		"--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics",
		// Logs each binding, so the log tells where every pod went.
		"--v=2",
	)
	if err != nil {
		return nil, err
	}
	s := &schedulerProcess{child: c, configPath: configPath, url: "https://" + hostPort(ports[0])}
	if err := c.waitHealthy(ctx, s.url+"/readyz", readyTimeout); err != nil {
		c.stop(10 * time.Second)
		return nil, err
	}
	// The load-aware plugin reads Prometheus in the background: a pod
	// placed before its first read finds every node neutral and may land on
	// the hot one.
	client := localHTTPClient()
	defer client.CloseIdleConnections()
	err = c.waitFor(ctx, readyTimeout, func(ctx context.Context) bool {
		without, ok := metricValue(ctx, client, s.url+"/metrics", "harbormaster_utilization_nodes_without_data", `plugin="`+loadaware.Name+`"`, `resource="cpu"`)
		return ok && without == 0
	})
	if err != nil {
		c.stop(10 * time.Second)
		return nil, fmt.Errorf("the scheduler has no load data for some nodes: %w", err)
	}
	return s, nil
}

// schedulerPlugins enables the load-aware and GPU plugins on the demo's
// Prometheus (node load and DCGM card load),
// as manifests/base/scheduler/config.yaml does in a cluster.
func schedulerPlugins(prometheusURL string) string {
	return fmt.Sprintf(`  plugins:
    multiPoint:
      enabled:
      - name: %[1]s
        weight: 5
      - name: %[5]s
        weight: 10
    score:
      disabled:
      - name: NodeResourcesFit
      - name: NodeResourcesBalancedAllocation
  pluginConfig:
  - name: %[1]s
    args:
      filter:
        thresholds:
        - {name: cpu, percent: 90}
      sources:
        prometheus:
          address: %[2]s
          queries:
            cpu: %[3]s
            memory: %[4]s
          nodeLabels: [node]
          refreshInterval: 1s
  - name: %[5]s
    args:
      scoringStrategy:
        type: FGD
      utilization:
        prometheus:
          address: %[2]s
          refreshInterval: 1s
`, loadaware.Name, prometheusURL, demoCPUMetric, demoMemoryMetric, gpuplugin.Name)
}

// startKwok marks the nodes for kwok and runs it until it plays their
// kubelets: each node initialised by kwok (it reports a kubelet version)
// and holding a Lease that kwok renews.
func startKwok(ctx context.Context, cp *framework.ControlPlane, binary, stateDir, logDir string, nodes []framework.NodeSpec) (*child, error) {
	patch := []byte(fmt.Sprintf(`{"metadata":{"annotations":{%q:"fake"}}}`, kwokNodeAnnotation))
	for _, n := range nodes {
		if _, err := cp.Client.CoreV1().Nodes().Patch(ctx, n.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			return nil, fmt.Errorf("marking node %s for kwok: %w", n.Name, err)
		}
	}
	stagesPath := filepath.Join(stateDir, "kwok-stages.yaml")
	if err := os.WriteFile(stagesPath, []byte(kwokStages), 0o600); err != nil {
		return nil, err
	}
	ports, err := freePorts(1)
	if err != nil {
		return nil, err
	}
	c, err := startChild("kwok", filepath.Join(logDir, "kwok.log"), binary,
		"--kubeconfig="+cp.KubeconfigPath,
		"--config="+stagesPath,
		"--manage-all-nodes=false",
		"--manage-nodes-with-annotation-selector="+kwokNodeAnnotation+"=fake",
		// Renews a Lease per node in kube-node-lease, as a kubelet does; the
		// status heartbeat stage can then be rare.
		"--node-lease-duration-seconds=40",
		// For /healthz.
		"--server-address="+hostPort(ports[0]),
	)
	if err != nil {
		return nil, err
	}
	if err := c.waitHealthy(ctx, "http://"+hostPort(ports[0])+"/healthz", readyTimeout); err != nil {
		c.stop(10 * time.Second)
		return nil, err
	}
	err = c.waitFor(ctx, readyTimeout, func(ctx context.Context) bool {
		for _, n := range nodes {
			node, err := cp.Client.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
			if err != nil || node.Status.NodeInfo.KubeletVersion == "" {
				return false
			}
			if _, err := cp.Client.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, n.Name, metav1.GetOptions{}); err != nil {
				return false
			}
		}
		return true
	})
	if err != nil {
		c.stop(10 * time.Second)
		return nil, fmt.Errorf("kwok does not manage the nodes: %w", err)
	}
	return c, nil
}

// freePorts returns n distinct free ports on 127.0.0.1.
func freePorts(n int) ([]int, error) {
	var ports []int
	for len(ports) < n {
		p, err := framework.FreePort()
		if err != nil {
			return nil, err
		}
		// The kernel may hand out a port again once it is closed.
		dup := false
		for _, q := range ports {
			dup = dup || q == p
		}
		if !dup {
			ports = append(ports, p)
		}
	}
	return ports, nil
}

func hostPort(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }
