// Command demo runs Harbormaster on a local control plane: real etcd,
// kube-apiserver and kube-controller-manager from bin/, simulated nodes in
// host groups, a dedicated pool and a GPU pool, the Harbormaster webhook
// with the example configuration and policies of manifests/, a real
// Prometheus scraping simulated node load, and the Harbormaster scheduler
// scoring by that load. It applies sample tenants and workloads, prints
// what Harbormaster did to each, shows a live ratio change, then leaves a
// kubeconfig in .demo/ and stops every process on Ctrl-C. `make demo` runs
// it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
	"sigs.k8s.io/yaml"

	"github.com/harbormaster-dev/harbormaster/pkg/config"
	"github.com/harbormaster-dev/harbormaster/pkg/plugins/loadaware"
	"github.com/harbormaster-dev/harbormaster/test/framework"
)

// The simulated node exporter's metrics: the fraction of a node's CPU and
// memory in use, per node.
const (
	demoCPUMetric    = "harbormaster_demo_node_cpu_utilisation"
	demoMemoryMetric = "harbormaster_demo_node_memory_utilisation"
)

func main() {
	stateDir := flag.String("state-dir", ".demo", "where the kubeconfig and logs are written")
	exitAfter := flag.Duration("exit-after", 0, "stop by itself this long after the report (0: wait for Ctrl-C); used by tests")
	klog.InitFlags(nil)
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *stateDir, *exitAfter, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, stateDir string, exitAfter time.Duration, out io.Writer) error {
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		return err
	}
	logPath := filepath.Join(stateDir, "control-plane.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	// Component logs (webhook, scheduler, controller-runtime) go to the log
	// file; the terminal shows the report.
	klog.LogToStderr(false)
	klog.SetOutput(logFile)
	// Errors too: a failing metrics source is part of what the log shows.
	_ = flag.Set("stderrthreshold", "FATAL")

	fmt.Fprintln(out, "Starting etcd, kube-apiserver and kube-controller-manager from bin/ ...")
	cp, err := framework.StartControlPlane(ctx, framework.Options{ControllerManager: true, Output: logFile})
	if err != nil {
		return err
	}
	defer func() {
		fmt.Fprintln(out, "Stopping every process ...")
		if err := cp.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "demo: stopping:", err)
		}
	}()
	nodes := demoNodes()
	if err := framework.CreateNodes(ctx, cp.Client, nodes...); err != nil {
		return err
	}

	fmt.Fprintln(out, "Starting Prometheus scraping simulated node load ...")
	exporter, err := startLoadExporter(ctx, nodes)
	if err != nil {
		return err
	}
	promDir := filepath.Join(stateDir, "prometheus")
	if err := os.RemoveAll(promDir); err != nil {
		return err
	}
	if err := os.MkdirAll(promDir, 0o755); err != nil {
		return err
	}
	prom, err := framework.StartPrometheus(ctx, promDir, framework.PrometheusOptions{
		Targets: []string{exporter}, ScrapeInterval: time.Second, Output: logFile,
	})
	if err != nil {
		return fmt.Errorf("starting prometheus (`make demo` installs Debian's package): %w", err)
	}
	defer func() { _ = prom.Stop() }()
	if err := prom.WaitForSeries(ctx, demoCPUMetric, len(nodes), 60*time.Second); err != nil {
		return err
	}

	fmt.Fprintln(out, "Starting the Harbormaster webhook and scheduler ...")
	exampleConfig, err := exampleConfigDocument()
	if err != nil {
		return err
	}
	webhookDir := filepath.Join(stateDir, "webhook")
	if err := os.MkdirAll(webhookDir, 0o700); err != nil {
		return err
	}
	wh, err := framework.StartWebhook(ctx, cp, webhookDir, exampleConfig)
	if err != nil {
		return err
	}
	defer wh.Stop()
	// The demo's scheduler is the cluster's only one, so it takes the
	// default profile name and places every controller's pods.
	sched, err := framework.StartScheduler(ctx, stateDir, cp.SchedulerConfig(corev1.DefaultSchedulerName, schedulerPlugins(prom.URL), false))
	if err != nil {
		return err
	}
	defer func() { _ = sched.Stop() }()

	kubeconfig, err := filepath.Abs(filepath.Join(stateDir, "kubeconfig"))
	if err != nil {
		return err
	}
	if err := os.WriteFile(kubeconfig, cp.Env.KubeConfig, 0o600); err != nil {
		return err
	}
	defer os.Remove(kubeconfig)

	d := &demo{cp: cp, webhook: wh, out: out, config: exampleConfig}
	if err := d.run(ctx); err != nil {
		return err
	}

	fmt.Fprintf(out, `
The control plane keeps running with %d simulated nodes.

  export KUBECONFIG=%s
  bin/kubectl get nodes -L harbormaster.io/host-group,harbormaster.io/dedicated,nvidia.com/gpu.product
  bin/kubectl get pods -A -o wide
  bin/kubectl -n harbormaster-system edit configmap harbormaster-config   # ratios change live

Prometheus: %s   Logs: %s
Press Ctrl-C to stop every process.
`, len(nodes), kubeconfig, prom.URL, logPath)

	if exitAfter > 0 {
		select {
		case <-ctx.Done():
		case <-time.After(exitAfter):
		}
	} else {
		<-ctx.Done()
	}
	return nil
}

// exampleConfigDocument is config.yaml of the example ConfigMap in
// manifests/, so the demo shows exactly what an install starts with.
func exampleConfigDocument() (string, error) {
	root, err := framework.RepoRoot()
	if err != nil {
		return "", err
	}
	raw, err := os.ReadFile(filepath.Join(root, "manifests", "base", "webhook", "config.yaml"))
	if err != nil {
		return "", err
	}
	var cm corev1.ConfigMap
	if err := yaml.UnmarshalStrict(raw, &cm); err != nil {
		return "", fmt.Errorf("manifests/base/webhook/config.yaml: %w", err)
	}
	doc := cm.Data[config.ConfigMapKey]
	if _, err := config.Parse([]byte(doc)); err != nil {
		return "", fmt.Errorf("manifests/base/webhook/config.yaml: %w", err)
	}
	return doc, nil
}

// schedulerPlugins enables the load-aware plugin on the demo's Prometheus,
// as manifests/base/scheduler/config.yaml does in a cluster.
func schedulerPlugins(prometheusURL string) string {
	return fmt.Sprintf(`  plugins:
    multiPoint:
      enabled:
      - name: %[1]s
        weight: 5
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
`, loadaware.Name, prometheusURL, demoCPUMetric, demoMemoryMetric)
}

// startLoadExporter serves the simulated per-node CPU utilisation on a
// local port until ctx ends and returns its host:port.
func startLoadExporter(ctx context.Context, nodes []framework.NodeSpec) (string, error) {
	reg := prometheus.NewRegistry()
	cpu := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: demoCPUMetric, Help: "Simulated node CPU utilisation (0..1)."}, []string{"node"})
	memory := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: demoMemoryMetric, Help: "Simulated node memory utilisation (0..1)."}, []string{"node"})
	reg.MustRegister(cpu, memory)
	load := demoLoad()
	for _, n := range nodes {
		cpu.WithLabelValues(n.Name).Set(load[n.Name])
		// Memory follows CPU loosely, so both signals agree on hot spots.
		memory.WithLabelValues(n.Name).Set(0.1 + load[n.Name]/2)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	srv := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			klog.ErrorS(err, "Demo exporter stopped")
		}
	}()
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	return l.Addr().String(), nil
}

// demoLoad is the simulated CPU utilisation: general-0 is a hot spot the
// scheduler must avoid, general-2 is busy, the rest are cool.
func demoLoad() map[string]float64 {
	return map[string]float64{
		"general-0": 0.93, "general-1": 0.20, "general-2": 0.55,
		"batch-0": 0.35, "batch-1": 0.10,
		"bigdata-0": 0.15, "bigdata-1": 0.40,
		"gpu-0": 0.30, "gpu-1": 0.05,
	}
}

// demoNodes is a small cluster: two host groups, a dedicated pool for one
// tenant's big-data jobs and a GPU pool.
func demoNodes() []framework.NodeSpec {
	var nodes []framework.NodeSpec
	for i := range 3 {
		nodes = append(nodes, framework.NodeSpec{
			Name: fmt.Sprintf("general-%d", i), CPU: "16", Memory: "64Gi",
			Labels: map[string]string{"harbormaster.io/host-group": "general"},
		})
	}
	for i := range 2 {
		nodes = append(nodes, framework.NodeSpec{
			Name: fmt.Sprintf("batch-%d", i), CPU: "32", Memory: "128Gi",
			Labels: map[string]string{"harbormaster.io/host-group": "batch"},
		})
	}
	for i := range 2 {
		nodes = append(nodes, framework.NodeSpec{
			Name: fmt.Sprintf("bigdata-%d", i), CPU: "64", Memory: "256Gi",
			Labels: map[string]string{"harbormaster.io/host-group": "batch", "harbormaster.io/dedicated": "bigdata-a"},
			Taints: []corev1.Taint{{Key: "harbormaster.io/dedicated", Value: "bigdata-a", Effect: corev1.TaintEffectNoSchedule}},
		})
	}
	for i := range 2 {
		nodes = append(nodes, framework.NodeSpec{
			Name: fmt.Sprintf("gpu-%d", i), CPU: "96", Memory: "512Gi", GPUs: 8,
			Labels: map[string]string{"harbormaster.io/host-group": "gpu", "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"},
		})
	}
	return nodes
}
