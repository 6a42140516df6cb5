// Command demo runs Harbormaster on a local control plane: real etcd,
// kube-apiserver and kube-controller-manager from bin/, simulated nodes in
// host groups, a dedicated pool and a GPU pool whose kubelets kwok plays
// (heartbeats, leases, pods Running), a real Prometheus scraping simulated
// node and DCGM exporters, and the Harbormaster webhook (example
// configuration and policies of manifests/) and scheduler (scoring by that
// load) as processes of their own, built from this tree. It applies sample
// tenants and workloads, prints what Harbormaster did to each, shows a live
// ratio change, then leaves a kubeconfig in .demo/ and stops every process
// on Ctrl-C. `make demo` runs it.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
	"sigs.k8s.io/yaml"

	"github.com/harbormaster-dev/harbormaster/pkg/config"
	"github.com/harbormaster-dev/harbormaster/test/framework"
)

func main() {
	stateDir := flag.String("state-dir", ".demo", "where the kubeconfig, configurations and logs are written")
	exitAfter := flag.Duration("exit-after", 0, "stop by itself this long after the report (0: wait for Ctrl-C); used by tests")
	klog.InitFlags(nil)
	flag.Parse()

	// SIGHUP too: closing the terminal must not leave etcd and
	// kube-apiserver behind (envtest does not tie them to the demo; after a
	// SIGKILL, the next run stops them: leftovers.go).
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	// A Ctrl-C also ends a pager or tee reading the report; writing to it
	// must fail rather than kill the demo before it has stopped everything.
	signal.Ignore(syscall.SIGPIPE)
	if err := run(ctx, *stateDir, *exitAfter, os.Stdout); err != nil {
		if ctx.Err() != nil {
			// Ctrl-C before the report: whatever was waiting says
			// "context canceled", which is no failure to report.
			fmt.Fprintln(os.Stderr, "demo: interrupted; every process stopped")
		} else {
			fmt.Fprintln(os.Stderr, "demo:", err)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, stateDir string, exitAfter time.Duration, out io.Writer) error {
	// Stops the exporters when the demo ends, however it ends.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stateDir, err := filepath.Abs(stateDir)
	if err != nil {
		return err
	}
	logDir := filepath.Join(stateDir, "logs")
	// Logs and Prometheus data are per run.
	for _, dir := range []string{logDir, filepath.Join(stateDir, "prometheus")} {
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	demoLog, err := os.Create(filepath.Join(logDir, "demo.log"))
	if err != nil {
		return err
	}
	defer demoLog.Close()
	// The demo's own client logs go to a file; the terminal shows the
	// report.
	klog.LogToStderr(false)
	klog.SetOutput(demoLog)
	_ = flag.Set("stderrthreshold", "FATAL")

	root, err := framework.RepoRoot()
	if err != nil {
		return err
	}
	bins := binaries{harbormaster: filepath.Join(root, "bin"), tools: os.Getenv("KUBEBUILDER_ASSETS")}
	if bins.tools == "" {
		bins.tools = bins.harbormaster
	}
	if _, err := os.Stat(bins.kwok()); err != nil {
		return fmt.Errorf("kwok missing (`make tools` builds it): %w", err)
	}
	fmt.Fprintln(out, "Building bin/harbormaster-webhook and bin/harbormaster-scheduler ...")
	if err := goBuild(ctx, root, bins.webhook(), "./cmd/webhook"); err != nil {
		return err
	}
	if err := goBuild(ctx, root, bins.scheduler(), "./cmd/scheduler"); err != nil {
		return err
	}

	// Every log file is opened before any process starts and closed after
	// all have stopped.
	logs := map[string]*os.File{}
	for _, name := range []string{"control-plane", "prometheus"} {
		f, err := os.Create(filepath.Join(logDir, name+".log"))
		if err != nil {
			return err
		}
		defer f.Close()
		logs[name] = f
	}
	// Processes stop in reverse order of start: the components before the
	// control plane they talk to.
	var stops []func()
	defer func() {
		fmt.Fprintln(out, "Stopping every process ...")
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}()

	leftovers := filepath.Join(stateDir, leftoversFile)
	if n, err := stopLeftovers(leftovers); err != nil {
		return fmt.Errorf("stopping what a killed demo left: %w", err)
	} else if n > 0 {
		fmt.Fprintf(out, "Stopped %d control-plane processes a killed demo left running.\n", n)
	}
	fmt.Fprintln(out, "Starting etcd, kube-apiserver and kube-controller-manager from bin/ ...")
	cp, err := framework.StartControlPlane(ctx, framework.Options{BinDir: bins.tools, ControllerManager: true, Output: logs["control-plane"]})
	if err != nil {
		return err
	}
	stops = append(stops, func() {
		if err := cp.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "demo: stopping the control plane:", err)
		}
		_ = os.Remove(leftovers)
	})
	// Only the control plane runs yet: the record names its processes.
	if err := recordControlPlane(leftovers); err != nil {
		return fmt.Errorf("recording the control plane's processes: %w", err)
	}

	nodes := demoNodes()
	fmt.Fprintf(out, "Creating %d nodes; kwok plays their kubelets ...\n", len(nodes))
	if err := framework.CreateNodes(ctx, cp.Client, nodes...); err != nil {
		return err
	}
	kwok, err := startKwok(ctx, cp, bins.kwok(), stateDir, logDir, nodes)
	if err != nil {
		return err
	}
	stops = append(stops, func() { kwok.stop(10 * time.Second) })

	fmt.Fprintln(out, "Starting Prometheus scraping simulated node and DCGM exporters ...")
	nodeExporter, err := startNodeExporter(ctx, nodes)
	if err != nil {
		return err
	}
	dcgmExporter, err := startDCGMExporter(ctx, nodes)
	if err != nil {
		return err
	}
	prom, err := framework.StartPrometheus(ctx, filepath.Join(stateDir, "prometheus"), framework.PrometheusOptions{
		Targets: []string{nodeExporter, dcgmExporter}, ScrapeInterval: time.Second, Output: logs["prometheus"],
	})
	if err != nil {
		return fmt.Errorf("starting prometheus (`make demo` installs Debian's package): %w", err)
	}
	stops = append(stops, func() { _ = prom.Stop() })
	if err := prom.WaitForSeries(ctx, demoCPUMetric, len(nodes), 60*time.Second); err != nil {
		return err
	}
	if err := prom.WaitForSeries(ctx, dcgmUtilMetric, gpuCount(nodes), 60*time.Second); err != nil {
		return err
	}

	exampleConfig, err := exampleConfigDocument()
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "Starting the Harbormaster webhook and scheduler ...")
	webhook, err := startWebhook(ctx, cp, bins.webhook(), stateDir, logDir, exampleConfig)
	if err != nil {
		return err
	}
	stops = append(stops, func() { webhook.stop(10 * time.Second) })
	scheduler, err := startScheduler(ctx, cp, bins.scheduler(), stateDir, logDir, prom.URL)
	if err != nil {
		return err
	}
	stops = append(stops, func() { scheduler.stop(10 * time.Second) })

	kubeconfig := filepath.Join(stateDir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, cp.Env.KubeConfig, 0o600); err != nil {
		return err
	}
	defer os.Remove(kubeconfig)

	d := &demo{cp: cp, out: out, config: exampleConfig, nodes: nodes}
	if err := d.run(ctx); err != nil {
		return err
	}

	fmt.Fprintf(out, `
The cluster keeps running: %d nodes kept Ready by kwok, the demo's pods Running.

  export KUBECONFIG=%s
  bin/kubectl get nodes -L harbormaster.io/host-group,harbormaster.io/dedicated,nvidia.com/gpu.product
  bin/kubectl get pods -A -o wide
  bin/kubectl -n harbormaster-system edit configmap harbormaster-config   # ratios change live
  bin/kubectl -n team-a-web scale deployment web --replicas=5           # new pods pass the webhook
  tail -f %s   # one line per policy decision

  API server   %s
  Webhook      %s   metrics %s   profiles %s
  Scheduler    %s   metrics %s/metrics   config %s
  Prometheus   %s   scrapes node load (%s) and, per GPU card,
               DCGM's %s, %s and %s
  Logs         %s

Press Ctrl-C to stop every process.
`, len(nodes), kubeconfig, webhook.decisionLog, strings.TrimSuffix(cp.Config.Host, "/"), webhook.url, webhook.metricsURL, webhook.pprofURL,
		scheduler.url, scheduler.url, scheduler.configPath, prom.URL, demoCPUMetric, dcgmUtilMetric, dcgmFBUsedMetric, dcgmFBFreeMetric, logDir)

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

// binaries locates what the demo runs: Harbormaster's own commands (built
// by the demo) and the tools of `make tools`.
type binaries struct{ harbormaster, tools string }

func (b binaries) webhook() string   { return filepath.Join(b.harbormaster, "harbormaster-webhook") }
func (b binaries) scheduler() string { return filepath.Join(b.harbormaster, "harbormaster-scheduler") }
func (b binaries) kwok() string      { return filepath.Join(b.tools, "kwok") }

func gpuCount(nodes []framework.NodeSpec) int {
	n := 0
	for _, s := range nodes {
		n += int(s.GPUs)
	}
	return n
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
