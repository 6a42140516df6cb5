// Command demo runs Harbormaster on a local control plane: real etcd,
// kube-apiserver and kube-controller-manager from bin/, simulated nodes in
// host groups, a dedicated pool and a GPU pool, and the Harbormaster
// scheduler. It leaves a kubeconfig in .demo/ and stops every process on
// Ctrl-C. `make demo` runs it.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"

	"github.com/harbormaster-dev/harbormaster/pkg/schedulerapp"
	"github.com/harbormaster-dev/harbormaster/test/framework"
)

func main() {
	stateDir := flag.String("state-dir", ".demo", "where the kubeconfig and logs are written")
	exitAfter := flag.Duration("exit-after", 0, "stop by itself after this long (0: wait for Ctrl-C); used by tests")
	klog.InitFlags(nil)
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *exitAfter > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *exitAfter)
		defer cancel()
	}
	if err := run(ctx, *stateDir); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, stateDir string) error {
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		return err
	}
	logPath := filepath.Join(stateDir, "control-plane.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()

	fmt.Println("Starting etcd, kube-apiserver and kube-controller-manager from bin/ ...")
	cp, err := framework.StartControlPlane(ctx, framework.Options{ControllerManager: true, Output: logFile})
	if err != nil {
		return err
	}
	defer func() {
		fmt.Println("Stopping the control plane ...")
		if err := cp.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "demo: stopping:", err)
		}
	}()

	if err := framework.CreateNodes(ctx, cp.Client, demoNodes()...); err != nil {
		return err
	}
	sched, err := framework.StartScheduler(ctx, stateDir, cp.SchedulerConfig(schedulerapp.SchedulerName, "", false))
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

	fmt.Printf(`
Harbormaster demo control plane is up (%d simulated nodes).

  export KUBECONFIG=%s
  bin/kubectl get nodes -L harbormaster.io/host-group,harbormaster.io/dedicated,nvidia.com/gpu.product

Pods with spec.schedulerName: %s are placed by the Harbormaster scheduler.
Control plane logs: %s
Press Ctrl-C to stop every process.
`, len(demoNodes()), kubeconfig, schedulerapp.SchedulerName, logPath)

	<-ctx.Done()
	// Give in-flight requests of kubectl users a moment before tearing down.
	time.Sleep(100 * time.Millisecond)
	return nil
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
