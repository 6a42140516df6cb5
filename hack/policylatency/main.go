// Command policylatency measures policy evaluation where it happens: in the
// webhook process `make demo` runs, with that process's own heap and
// collector settings. It creates pods as dry runs (the API server calls
// both webhooks, nothing is stored) one after another, then reads the
// evaluation latency the webhook wrote for each of them in its decision
// log and prints the percentiles. Given the webhook's metrics address
// (printed by `make demo`), it also reports the process's collection
// cycles and allocation per creation over the measured ones: the cadence
// that sets the latency's tail (docs/benchmarks.md, "Fourth round").
//
//	make demo                                  # in one terminal
//	go run ./hack/policylatency -requests 5000 # in another
//	go run ./hack/policylatency -webhook-metrics http://127.0.0.1:PORT/metrics
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
)

func main() {
	kubeconfig := flag.String("kubeconfig", ".demo/kubeconfig", "the demo's kubeconfig")
	decisionLog := flag.String("decision-log", ".demo/logs/decisions.log", "the demo webhook's decision log")
	namespace := flag.String("namespace", "team-a-web", "a tenant namespace of the demo")
	requests := flag.Int("requests", 5000, "dry-run pod creations")
	warmup := flag.Int("warmup", 200, "creations before the measured ones, left out of the percentiles")
	webhookMetrics := flag.String("webhook-metrics", "", "the demo webhook's metrics URL (optional): report its collection cycles and allocation per creation")
	flag.Parse()
	if err := run(context.Background(), *kubeconfig, *decisionLog, *namespace, *webhookMetrics, *warmup, *requests); err != nil {
		fmt.Fprintln(os.Stderr, "policylatency:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, kubeconfig, decisionLog, namespace, webhookMetrics string, warmup, requests int) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return fmt.Errorf("reading %s (is `make demo` running?): %w", kubeconfig, err)
	}
	cfg.QPS, cfg.Burst = -1, 0 // no client-side throttling: requests are sequential anyway
	cfg.WarningHandler = rest.NoWarnings{}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	// Names are unique per run, so this run's decisions can be told apart
	// in the log.
	prefix := fmt.Sprintf("latency-probe-%d-", time.Now().UnixNano())
	create := func(name string) error {
		_, err := client.CoreV1().Pods(namespace).Create(ctx, probePod(name), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err
	}
	for i := range warmup {
		if err := create(fmt.Sprintf("warmup-%s%d", prefix, i)); err != nil {
			return fmt.Errorf("warm-up creation: %w", err)
		}
	}
	var before runtimeStats
	if webhookMetrics != "" {
		if before, err = scrapeRuntimeStats(ctx, webhookMetrics); err != nil {
			return err
		}
	}
	start := time.Now()
	for i := range requests {
		if err := create(fmt.Sprintf("%s%d", prefix, i)); err != nil {
			return fmt.Errorf("creation %d: %w", i, err)
		}
	}
	took := time.Since(start)
	var after runtimeStats
	if webhookMetrics != "" {
		if after, err = scrapeRuntimeStats(ctx, webhookMetrics); err != nil {
			return err
		}
	}
	// The decision log is written asynchronously to the response.
	time.Sleep(time.Second)

	latencies, results, err := readLatencies(decisionLog, prefix)
	if err != nil {
		return err
	}
	if len(latencies) != requests {
		return fmt.Errorf("%d decisions logged for %d creations (rotated log? use -decision-log on the current file)", len(latencies), requests)
	}
	slices.Sort(latencies)
	fmt.Printf("policy evaluations in the webhook process: %d (%s)\n", len(latencies), formatCounts(results))
	fmt.Printf("p50 %.3f ms  p90 %.3f ms  p99 %.3f ms  p99.9 %.3f ms  max %.3f ms\n",
		percentile(latencies, 50), percentile(latencies, 90), percentile(latencies, 99), percentile(latencies, 99.9), latencies[len(latencies)-1])
	fmt.Printf("dry-run creations through the API server: %.2f ms each on average\n", float64(took.Microseconds())/1000/float64(requests))
	if webhookMetrics != "" {
		fmt.Println(after.since(before, requests))
	}
	return nil
}

// runtimeStats are the webhook process's Go runtime counters, from the
// metrics controller-runtime serves.
type runtimeStats struct {
	cycles, allocatedBytes, heapGoalBytes float64
}

func scrapeRuntimeStats(ctx context.Context, url string) (runtimeStats, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return runtimeStats{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return runtimeStats{}, fmt.Errorf("scraping -webhook-metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return runtimeStats{}, fmt.Errorf("scraping -webhook-metrics %s: %s", url, resp.Status)
	}
	return parseRuntimeStats(resp.Body)
}

// parseRuntimeStats reads the runtime series out of a Prometheus text
// exposition; every one must be present.
func parseRuntimeStats(r io.Reader) (runtimeStats, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(r)
	if err != nil {
		return runtimeStats{}, fmt.Errorf("parsing -webhook-metrics: %w", err)
	}
	first := func(name string) (*dto.Metric, error) {
		if f := families[name]; f != nil && len(f.GetMetric()) > 0 {
			return f.GetMetric()[0], nil
		}
		return nil, fmt.Errorf("metric %s missing from -webhook-metrics (is it the webhook's metrics address?)", name)
	}
	var s runtimeStats
	gc, err := first("go_gc_duration_seconds")
	if err != nil {
		return s, err
	}
	allocated, err := first("go_memstats_alloc_bytes_total")
	if err != nil {
		return s, err
	}
	goal, err := first("go_memstats_next_gc_bytes")
	if err != nil {
		return s, err
	}
	s.cycles = float64(gc.GetSummary().GetSampleCount())
	s.allocatedBytes = allocated.GetCounter().GetValue()
	s.heapGoalBytes = goal.GetGauge().GetValue()
	return s, nil
}

// since describes the runtime's work between before and s, over n
// creations.
func (s runtimeStats) since(before runtimeStats, n int) string {
	cycles := s.cycles - before.cycles
	perCycle := "no cycle"
	if cycles > 0 {
		perCycle = fmt.Sprintf("one per %.0f creations", float64(n)/cycles)
	}
	return fmt.Sprintf("webhook process: %.0f collection cycles (%s), %.0f KB allocated per creation, heap goal %.1f MB",
		cycles, perCycle, (s.allocatedBytes-before.allocatedBytes)/float64(n)/1000, s.heapGoalBytes/1e6)
}

// readLatencies returns latency_ms of every decision on a pod named with
// prefix.
func readLatencies(path, prefix string) ([]float64, map[string]int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	var latencies []float64
	results := map[string]int{}
	lines := bufio.NewScanner(f)
	lines.Buffer(make([]byte, 0, 1<<16), 1<<22)
	for lines.Scan() {
		var d struct {
			Object struct {
				Name string `json:"name"`
			} `json:"object"`
			Result    string  `json:"result"`
			LatencyMS float64 `json:"latency_ms"`
		}
		if err := json.Unmarshal(lines.Bytes(), &d); err != nil || !strings.HasPrefix(d.Object.Name, prefix) {
			continue
		}
		latencies = append(latencies, d.LatencyMS)
		results[d.Result]++
	}
	if err := lines.Err(); err != nil {
		return nil, nil, err
	}
	if len(latencies) == 0 {
		return nil, nil, errors.New("no decision of this run in the log")
	}
	return latencies, results, nil
}

// percentile of sorted values, nearest rank.
func percentile(sorted []float64, p float64) float64 {
	i := int(float64(len(sorted))*p/100+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func formatCounts(m map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}

// probePod is a web pod as a Deployment's ReplicaSet would create it: two
// containers and an init container with limits, env, ports, probes and
// mounts, the shape of pkg/policy's benchmark pod.
func probePod(name string) *corev1.Pod {
	q := resource.MustParse
	probe := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}},
		PeriodSeconds: 10}
	container := func(name, cpu, memory string, port int32) corev1.Container {
		return corev1.Container{
			Name: name, Image: "registry.k8s.io/pause:3.10",
			Ports: []corev1.ContainerPort{{Name: name, ContainerPort: port}},
			Env: []corev1.EnvVar{{Name: "LOG_LEVEL", Value: "info"},
				{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}},
			Resources:      corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceCPU: q(cpu), corev1.ResourceMemory: q(memory)}},
			LivenessProbe:  probe,
			ReadinessProbe: probe,
			VolumeMounts:   []corev1.VolumeMount{{Name: "data", MountPath: "/data"}},
		}
	}
	init := container("init", "100m", "64Mi", 9000)
	init.LivenessProbe, init.ReadinessProbe, init.Ports = nil, nil, nil
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
			"app.kubernetes.io/name": "web", "app.kubernetes.io/instance": "web-1", "pod-template-hash": "7d9f8c6b5"}},
		Spec: corev1.PodSpec{
			InitContainers:                []corev1.Container{init},
			Containers:                    []corev1.Container{container("app", "2", "2Gi", 8080), container("sidecar", "500m", "256Mi", 8081)},
			Volumes:                       []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
			TerminationGracePeriodSeconds: ptr.To[int64](30),
		},
	}
}
