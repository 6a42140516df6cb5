package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/component-base/metrics/legacyregistry"

	"github.com/harbormaster-dev/harbormaster/pkg/plugins/loadaware"
	"github.com/harbormaster-dev/harbormaster/test/framework"
)

// testCPUMetric is the gauge the test exporter serves per node, standing in
// for node_exporter's CPU counters.
const testCPUMetric = "harbormaster_test_node_cpu_utilisation"

// loadAwarePlugins enables HarbormasterLoadAware as the only load signal
// (the request-based scores are off, as docs/scheduling.md recommends)
// reading CPU from prometheusURL, with a short window so a lost Prometheus
// shows within seconds.
func loadAwarePlugins(prometheusURL string) string {
	return fmt.Sprintf(`  plugins:
    multiPoint:
      enabled:
      - name: %[1]s
        weight: 10
    score:
      disabled:
      - name: NodeResourcesFit
      - name: NodeResourcesBalancedAllocation
  pluginConfig:
  - name: %[1]s
    args:
      scoringStrategy:
        type: LeastUtilized
        resources:
        - name: cpu
          weight: 1
        - name: memory
          weight: 0
      filter:
        thresholds:
        - name: cpu
          percent: 90
      stalenessWindow: 3s
      sources:
        prometheus:
          address: %[2]s
          queries:
            cpu: %[3]s
          nodeLabels: [node]
          refreshInterval: 500ms
          timeout: 500ms
`, loadaware.Name, prometheusURL, testCPUMetric)
}

// TestLoadAwareSchedulingWithRealPrometheus runs the scheduler against a
// real API server and a real Prometheus scraping simulated node load:
// pods go to the cool nodes, the hot node is filtered for all but critical
// pods, and once Prometheus is gone every node turns neutral and every pod
// is still placed.
func TestLoadAwareSchedulingWithRealPrometheus(t *testing.T) {
	cp := framework.Start(t, framework.Options{})
	ctx := t.Context()

	load := map[string]float64{"hot-a": 0.95, "hot-b": 0.85, "cool-a": 0.10, "cool-b": 0.20}
	exporter := framework.StartExporter(t, testCPUMetric)
	var specs []framework.NodeSpec
	for node, v := range load {
		exporter.Set(node, v)
		specs = append(specs, framework.NodeSpec{Name: node, CPU: "16", Memory: "64Gi"})
	}
	prom := framework.RunPrometheus(t, framework.PrometheusOptions{Targets: []string{exporter.Target()}})
	require.NoError(t, prom.WaitForSeries(ctx, testCPUMetric, len(load), 60*time.Second))
	require.NoError(t, framework.CreateNodes(ctx, cp.Client, specs...))

	const profile = "harbormaster-loadaware"
	framework.RunScheduler(t, cp.SchedulerConfig(profile, loadAwarePlugins(prom.URL), false))
	ns := createNamespace(t, cp.Client, "loadaware", nil)

	// Phase 1: real utilisation steers placement.
	first := createPods(t, cp.Client, ns, profile, "cool", 8)
	placed := map[string]int{}
	for _, name := range first {
		node := waitForScheduled(t, cp.Client, ns, name, 60*time.Second)
		placed[node]++
		assert.Contains(t, []string{"cool-a", "cool-b"}, node, "pod %s went to a hot node", name)
		exp := scoreAnnotation(t, cp.Client, ns, name)
		assert.Equal(t, node, exp.Node, "the annotation names the chosen node")
		assert.Equal(t, "prometheus", exp.Src)
		require.NotNil(t, exp.CPU)
		require.NotNil(t, exp.RunnerUp)
		assert.GreaterOrEqual(t, exp.Score, exp.RunnerUp.Score)
		t.Logf("%s: %s", name, mustMarshal(t, exp))
	}
	t.Logf("placement with Prometheus: %v", placed)

	// The filter keeps an ordinary pod off the 95% node even when the pod
	// can go nowhere else, but not a system-critical one.
	pinned := pinnedPod(ns, "pinned-hot", profile, "hot-a", "")
	_, err := cp.Client.CoreV1().Pods(ns).Create(ctx, pinned, metav1.CreateOptions{})
	require.NoError(t, err)
	msg := waitForUnschedulable(t, cp.Client, ns, pinned.Name, 60*time.Second)
	assert.Contains(t, msg, "node cpu utilisation above threshold")

	critical := pinnedPod("kube-system", "critical-hot", profile, "hot-a", "system-node-critical")
	_, err = cp.Client.CoreV1().Pods("kube-system").Create(ctx, critical, metav1.CreateOptions{})
	require.NoError(t, err)
	assert.Equal(t, "hot-a", waitForScheduled(t, cp.Client, "kube-system", critical.Name, 60*time.Second))

	// Phase 2: Prometheus dies. After the staleness window every node is
	// unknown, hence neutral, and scheduling goes on without errors.
	require.NoError(t, prom.Stop())
	waitForPipelineMetric(t, profile, "harbormaster_utilization_nodes_without_data", `resource="cpu"`, func(v float64) bool { return v == float64(len(load)) })
	waitForPipelineMetric(t, profile, "harbormaster_utilization_fetch_errors_total", `source="prometheus"`, func(v float64) bool { return v > 0 })

	second := createPods(t, cp.Client, ns, profile, "blind", 8)
	for _, name := range second {
		node := waitForScheduled(t, cp.Client, ns, name, 60*time.Second)
		exp := scoreAnnotation(t, cp.Client, ns, name)
		assert.Equal(t, node, exp.Node)
		assert.Equal(t, "none", exp.Src, "no data: the node was neutral")
		assert.Equal(t, loadaware.NeutralScore, exp.Score)
		assert.Nil(t, exp.CPU)
	}
}

func createPods(t *testing.T, c kubernetes.Interface, ns, schedulerName, prefix string, n int) []string {
	t.Helper()
	var names []string
	for i := range n {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", prefix, i), Namespace: ns},
			Spec: corev1.PodSpec{
				SchedulerName: schedulerName,
				Containers: []corev1.Container{{
					Name: "c", Image: "registry.k8s.io/pause:3.10",
					Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
						corev1.ResourceCPU: mustQuantity("500m"), corev1.ResourceMemory: mustQuantity("256Mi"),
					}},
				}},
			},
		}
		_, err := c.CoreV1().Pods(ns).Create(t.Context(), pod, metav1.CreateOptions{})
		require.NoError(t, err)
		names = append(names, pod.Name)
	}
	return names
}

func pinnedPod(ns, name, schedulerName, node, priorityClass string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.PodSpec{
			SchedulerName:     schedulerName,
			PriorityClassName: priorityClass,
			NodeSelector:      map[string]string{corev1.LabelHostname: node},
			Containers:        []corev1.Container{{Name: "c", Image: "registry.k8s.io/pause:3.10"}},
		},
	}
}

func scoreAnnotation(t *testing.T, c kubernetes.Interface, ns, name string) loadaware.Explanation {
	t.Helper()
	var exp loadaware.Explanation
	// PreBind patches the annotation before binding, so a bound pod has it.
	p, err := c.CoreV1().Pods(ns).Get(t.Context(), name, metav1.GetOptions{})
	require.NoError(t, err)
	raw, ok := p.Annotations[loadaware.ScoreAnnotation]
	require.True(t, ok, "pod %s/%s has no %s annotation", ns, name, loadaware.ScoreAnnotation)
	require.NoError(t, json.Unmarshal([]byte(raw), &exp), raw)
	return exp
}

// waitForUnschedulable waits for the scheduler to mark the pod
// unschedulable and returns the condition's message.
func waitForUnschedulable(t *testing.T, c kubernetes.Interface, ns, name string, timeout time.Duration) string {
	t.Helper()
	var msg string
	err := wait.PollUntilContextTimeout(t.Context(), 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		p, err := c.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		if p.Spec.NodeName != "" {
			return false, fmt.Errorf("pod %s/%s was scheduled to %s", ns, name, p.Spec.NodeName)
		}
		for _, cond := range p.Status.Conditions {
			if cond.Type == corev1.PodScheduled && cond.Status == corev1.ConditionFalse && cond.Reason == corev1.PodReasonUnschedulable {
				msg = cond.Message
				return true, nil
			}
		}
		return false, nil
	})
	require.NoError(t, err, "pod %s/%s never marked unschedulable", ns, name)
	return msg
}

// waitForPipelineMetric polls the in-process scheduler's metrics registry
// (what it serves on /metrics) until the series of name for profile whose
// labels include match satisfies ok.
func waitForPipelineMetric(t *testing.T, profile, name, match string, ok func(float64) bool) {
	t.Helper()
	var seen []string
	err := wait.PollUntilContextTimeout(t.Context(), 200*time.Millisecond, 60*time.Second, true, func(context.Context) (bool, error) {
		mfs, err := legacyregistry.DefaultGatherer.Gather()
		if err != nil {
			return false, err
		}
		seen = seen[:0]
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
			for _, m := range mf.GetMetric() {
				var labels []string
				for _, l := range m.GetLabel() {
					labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
				}
				v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
				seen = append(seen, fmt.Sprintf("{%s} %v", strings.Join(labels, ","), v))
				if slices.Contains(labels, fmt.Sprintf("profile=%q", profile)) && slices.Contains(labels, match) && ok(v) {
					return true, nil
				}
			}
		}
		return false, nil
	})
	require.NoError(t, err, "metric %s{%s} never reached the expected value; seen %v", name, match, seen)
}

func mustMarshal(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

// TestLoadAwareLeaderFailover runs two scheduler replicas with leader
// election, stops the leader mid-run and checks the standby takes over
// with warm utilisation data: every pod is placed on a cool node and bound
// exactly once. The replicas are separate processes built from
// cmd/scheduler because kube-scheduler exits the process when a replica
// stops leading, which an in-process scheduler cannot survive.
func TestLoadAwareLeaderFailover(t *testing.T) {
	cp := framework.Start(t, framework.Options{})
	ctx := t.Context()
	scheduler := buildScheduler(t)

	load := map[string]float64{"hot-a": 0.95, "cool-a": 0.10, "cool-b": 0.20}
	exporter := framework.StartExporter(t, testCPUMetric)
	var specs []framework.NodeSpec
	for node, v := range load {
		exporter.Set(node, v)
		specs = append(specs, framework.NodeSpec{Name: node, CPU: "16", Memory: "64Gi"})
	}
	prom := framework.RunPrometheus(t, framework.PrometheusOptions{Targets: []string{exporter.Target()}})
	require.NoError(t, prom.WaitForSeries(ctx, testCPUMetric, len(load), 60*time.Second))
	require.NoError(t, framework.CreateNodes(ctx, cp.Client, specs...))

	const profile = "harbormaster-ha"
	cfg := strings.Replace(cp.SchedulerConfig(profile, loadAwarePlugins(prom.URL), true),
		"  leaderElect: true\n", "  leaderElect: true\n  leaseDuration: 6s\n  renewDeadline: 4s\n  retryPeriod: 500ms\n", 1)
	cfgPath := filepath.Join(t.TempDir(), "scheduler.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(cfg), 0o600))

	leader := startSchedulerProcess(t, scheduler, cfgPath, "leader")
	first := waitForLeaseHolder(t, cp.Client, profile, "")
	standby := startSchedulerProcess(t, scheduler, cfgPath, "standby")
	ns := createNamespace(t, cp.Client, "failover", nil)

	before := createPods(t, cp.Client, ns, profile, "before", 6)
	for _, name := range before {
		assert.Contains(t, []string{"cool-a", "cool-b"}, waitForScheduled(t, cp.Client, ns, name, 60*time.Second))
	}

	// SIGTERM cancels the leader's context: it releases the lease and exits.
	leader.terminate(t)
	after := createPods(t, cp.Client, ns, profile, "after", 10)
	second := waitForLeaseHolder(t, cp.Client, profile, first)
	for _, name := range after {
		node := waitForScheduled(t, cp.Client, ns, name, 90*time.Second)
		assert.Contains(t, []string{"cool-a", "cool-b"}, node, "the standby kept its utilisation data warm")
		assert.Equal(t, "prometheus", scoreAnnotation(t, cp.Client, ns, name).Src)
	}
	require.True(t, standby.running(), "the standby is still up:\n%s", standby.tail())
	t.Logf("lease moved from %s to %s", first, second)

	// Binding an already bound pod fails at the API server, so a pod bound
	// twice would show as a second Scheduled or a FailedScheduling event.
	require.Eventually(t, func() bool {
		return countEvents(t, cp.Client, ns, "Scheduled", "after-") == len(after)
	}, 30*time.Second, 200*time.Millisecond, "one Scheduled event per pod placed by the new leader")
	events, err := cp.Client.EventsV1().Events(ns).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	scheduled := map[string]int{}
	for _, e := range events.Items {
		assert.NotEqual(t, "FailedScheduling", e.Reason, "%s: %s", e.Regarding.Name, e.Note)
		if e.Reason == "Scheduled" {
			scheduled[e.Regarding.Name]++
		}
	}
	for pod, n := range scheduled {
		assert.Equal(t, 1, n, "pod %s scheduled %d times", pod, n)
	}
}

func countEvents(t *testing.T, c kubernetes.Interface, ns, reason, podPrefix string) int {
	t.Helper()
	events, err := c.EventsV1().Events(ns).List(t.Context(), metav1.ListOptions{})
	require.NoError(t, err)
	n := 0
	for _, e := range events.Items {
		if e.Reason == reason && strings.HasPrefix(e.Regarding.Name, podPrefix) {
			n++
		}
	}
	return n
}

// waitForLeaseHolder waits until the scheduler's lease is held by someone
// other than previous and returns the holder.
func waitForLeaseHolder(t *testing.T, c kubernetes.Interface, name, previous string) string {
	t.Helper()
	var holder string
	err := wait.PollUntilContextTimeout(t.Context(), 200*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		lease, err := c.CoordinationV1().Leases("kube-system").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		if lease.Spec.HolderIdentity != nil {
			holder = *lease.Spec.HolderIdentity
		}
		return holder != "" && holder != previous, nil
	})
	require.NoError(t, err, "lease %s still held by %q", name, holder)
	return holder
}

// buildScheduler compiles cmd/scheduler.
func buildScheduler(t *testing.T) string {
	t.Helper()
	return buildCommand(t, "./cmd/scheduler")
}

// schedulerProcess is a scheduler replica run as a child that dies with
// the test binary.
type schedulerProcess struct {
	cmd  *exec.Cmd
	done chan struct{}
	mu   sync.Mutex
	log  bytes.Buffer
}

func (p *schedulerProcess) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.log.Len() > 1<<20 {
		p.log.Reset()
	}
	return p.log.Write(b)
}

func (p *schedulerProcess) tail() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	b := p.log.Bytes()
	return string(b[max(0, len(b)-3000):])
}

func (p *schedulerProcess) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func (p *schedulerProcess) terminate(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Errorf("scheduler did not exit on SIGTERM:\n%s", p.tail())
	}
}

func startSchedulerProcess(t *testing.T, binary, configPath, name string) *schedulerProcess {
	t.Helper()
	p := &schedulerProcess{done: make(chan struct{})}
	p.cmd = exec.Command(binary, "--config="+configPath, "--secure-port=0", "--v=2")
	var w io.Writer = p
	if os.Getenv("HARBORMASTER_TEST_LOGS") != "" {
		w = io.MultiWriter(p, prefixWriter{prefix: name + ": ", w: os.Stderr})
	}
	p.cmd.Stdout, p.cmd.Stderr = w, w
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(t, p.cmd.Start())
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		if p.running() {
			p.terminate(t)
		}
		if t.Failed() {
			t.Logf("%s scheduler output:\n%s", name, p.tail())
		}
	})
	return p
}

type prefixWriter struct {
	prefix string
	w      io.Writer
}

func (p prefixWriter) Write(b []byte) (int, error) {
	_, err := p.w.Write(append([]byte(p.prefix), b...))
	return len(b), err
}
