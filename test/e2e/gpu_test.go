package e2e

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/harbormaster-dev/harbormaster/pkg/gpu"
	gpuplugin "github.com/harbormaster-dev/harbormaster/pkg/plugins/gpu"
	"github.com/harbormaster-dev/harbormaster/test/framework"
)

// GPU models as NVIDIA GPU feature discovery labels them.
const (
	modelA100 = "NVIDIA-A100-SXM4-40GB"
	modelT4   = "Tesla-T4"
	modelV100 = "Tesla-V100-SXM2-16GB"
)

// gpuPlugins enables HarbormasterGPU (FGD) as the profile's placement
// signal; the request-based spreading scores are off, as docs/gpu.md
// recommends, since they would pull whole-GPU pods apart.
func gpuPlugins() string {
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
        type: FGD
`, gpuplugin.Name)
}

type gpuPodSpec struct {
	name     string
	whole    int64
	milli    int
	models   string // annotation
	selector string // nodeSelector on the model label
}

func gpuTestPod(ns, scheduler string, s gpuPodSpec) *corev1.Pod {
	reqs := corev1.ResourceList{corev1.ResourceCPU: mustQuantity("500m"), corev1.ResourceMemory: mustQuantity("256Mi")}
	var limits corev1.ResourceList
	if s.whole > 0 {
		reqs[gpu.ResourceName] = *resource.NewQuantity(s.whole, resource.DecimalSI)
		limits = corev1.ResourceList{gpu.ResourceName: reqs[gpu.ResourceName]}
	}
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: s.name, Namespace: ns, Annotations: map[string]string{}},
		Spec: corev1.PodSpec{
			SchedulerName: scheduler,
			Containers: []corev1.Container{{Name: "c", Image: "registry.k8s.io/pause:3.10",
				Resources: corev1.ResourceRequirements{Requests: reqs, Limits: limits}}},
		},
	}
	if s.milli > 0 {
		p.Annotations[gpu.MilliAnnotation] = fmt.Sprint(s.milli)
	}
	if s.models != "" {
		p.Annotations[gpu.ModelsAnnotation] = s.models
	}
	if s.selector != "" {
		p.Spec.NodeSelector = map[string]string{gpu.ModelLabel: s.selector}
	}
	return p
}

func createGPUPod(t *testing.T, c kubernetes.Interface, ns, scheduler string, s gpuPodSpec) {
	t.Helper()
	_, err := c.CoreV1().Pods(ns).Create(t.Context(), gpuTestPod(ns, scheduler, s), metav1.CreateOptions{})
	require.NoError(t, err)
}

// placedCards waits for the pod to be bound and returns its node and the
// cards written on it (PreBind writes them before binding).
func placedCards(t *testing.T, c kubernetes.Interface, ns, name string) (string, gpu.Assignment) {
	t.Helper()
	node := waitForScheduled(t, c, ns, name, 60*time.Second)
	p, err := c.CoreV1().Pods(ns).Get(t.Context(), name, metav1.GetOptions{})
	require.NoError(t, err)
	raw, ok := p.Annotations[gpu.CardsAnnotation]
	require.True(t, ok, "pod %s has no %s annotation", name, gpu.CardsAnnotation)
	a, err := gpu.ParseAssignment(raw)
	require.NoError(t, err)
	return node, a
}

func deleteGPUPod(t *testing.T, c kubernetes.Interface, ns, name string) {
	t.Helper()
	require.NoError(t, c.CoreV1().Pods(ns).Delete(t.Context(), name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}))
}

// TestGPUScheduling runs the Harbormaster scheduler with HarbormasterGPU
// against a real API server and simulated GPU nodes of three models.
func TestGPUScheduling(t *testing.T) {
	cp := framework.Start(t, framework.Options{})
	ctx := t.Context()
	gpuNode := func(name, model string, cards int64) framework.NodeSpec {
		return framework.NodeSpec{Name: name, CPU: "64", Memory: "256Gi", GPUs: cards, Labels: map[string]string{gpu.ModelLabel: model}}
	}
	require.NoError(t, framework.CreateNodes(ctx, cp.Client,
		gpuNode("a100-0", modelA100, 8), gpuNode("a100-1", modelA100, 8),
		gpuNode("t4-0", modelT4, 4), gpuNode("v100-0", modelV100, 4),
		framework.NodeSpec{Name: "cpu-0", CPU: "32", Memory: "128Gi"},
		framework.NodeSpec{Name: "cpu-1", CPU: "32", Memory: "128Gi"},
	))
	const profile = "harbormaster-gpu"
	framework.RunScheduler(t, cp.SchedulerConfig(profile, gpuPlugins(), false))
	ns := createNamespace(t, cp.Client, "gpu", nil)
	c := cp.Client

	t.Run("whole-GPU pods pack and leave a node free for an 8-GPU job", func(t *testing.T) {
		nodes := map[string]bool{}
		used := map[int]bool{}
		for i := range 4 {
			name := fmt.Sprintf("one-gpu-%d", i)
			createGPUPod(t, c, ns, profile, gpuPodSpec{name: name, whole: 1, models: modelA100})
			node, a := placedCards(t, c, ns, name)
			nodes[node] = true
			require.Len(t, a.Cards, 1)
			assert.False(t, used[a.Cards[0]], "card %d given twice", a.Cards[0])
			used[a.Cards[0]] = true
		}
		require.Len(t, nodes, 1, "one-GPU pods packed on one node: %v", nodes)
		createGPUPod(t, c, ns, profile, gpuPodSpec{name: "eight-gpu", whole: 8, models: modelA100})
		node, a := placedCards(t, c, ns, "eight-gpu")
		assert.False(t, nodes[node], "the 8-GPU job went to the node kept free")
		assert.Equal(t, "0,1,2,3,4,5,6,7", a.String())
	})

	t.Run("shared pods share a card of the requested model", func(t *testing.T) {
		cards := map[int]int64{}
		for i := range 3 {
			name := fmt.Sprintf("share-%d", i)
			createGPUPod(t, c, ns, profile, gpuPodSpec{name: name, milli: 300, selector: modelT4})
			node, a := placedCards(t, c, ns, name)
			assert.Equal(t, "t4-0", node)
			require.Len(t, a.Cards, 1)
			assert.Equal(t, int64(300), a.Milli)
			cards[a.Cards[0]] += a.Milli
		}
		assert.Less(t, len(cards), 3, "at least two shares on one card: %v", cards)
		for card, milli := range cards {
			assert.LessOrEqual(t, milli, int64(1000), "card %d over-committed", card)
		}
		// A whole card of the same node goes to a card no share holds.
		createGPUPod(t, c, ns, profile, gpuPodSpec{name: "t4-whole", whole: 1, models: "tesla-t4"})
		node, a := placedCards(t, c, ns, "t4-whole")
		assert.Equal(t, "t4-0", node, "the models annotation is case-insensitive")
		assert.NotContains(t, cards, a.Cards[0])
	})

	t.Run("a model nobody has is unschedulable", func(t *testing.T) {
		createGPUPod(t, c, ns, profile, gpuPodSpec{name: "h100", whole: 1, models: "NVIDIA-H100"})
		msg := waitForUnschedulable(t, c, ns, "h100", 60*time.Second)
		assert.Contains(t, msg, "GPU model not accepted by the pod")
	})

	t.Run("pods without GPUs avoid GPU nodes", func(t *testing.T) {
		for _, name := range createPods(t, c, ns, profile, "web", 6) {
			node := waitForScheduled(t, c, ns, name, 60*time.Second)
			assert.Contains(t, []string{"cpu-0", "cpu-1"}, node)
		}
	})

	t.Run("concurrent shared pods get disjoint shares, deletion frees them", func(t *testing.T) {
		// Eight half cards fill the V100 node's four cards exactly; they
		// are created at once, so the scheduler places them while earlier
		// ones are still assumed and unbound.
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := c.CoreV1().Pods(ns).Create(ctx, gpuTestPod(ns, profile, gpuPodSpec{name: fmt.Sprintf("half-%d", i), milli: 500, models: modelV100}), metav1.CreateOptions{})
				assert.NoError(t, err)
			}()
		}
		wg.Wait()
		byCard := map[int][]string{}
		for i := range 8 {
			name := fmt.Sprintf("half-%d", i)
			node, a := placedCards(t, c, ns, name)
			require.Equal(t, "v100-0", node)
			byCard[a.Cards[0]] = append(byCard[a.Cards[0]], name)
		}
		require.Len(t, byCard, 4, "%v", byCard)
		for card, pods := range byCard {
			assert.Len(t, pods, 2, "card %d: %v", card, pods)
		}

		createGPUPod(t, c, ns, profile, gpuPodSpec{name: "half-late", milli: 500, models: modelV100})
		msg := waitForUnschedulable(t, c, ns, "half-late", 60*time.Second)
		assert.Contains(t, msg, "no GPU card with the requested free share")

		// Deleting one holder of card 2 frees half of it; the waiting pod
		// is requeued by the deletion and takes exactly that share.
		freed := byCard[2][0]
		deleteGPUPod(t, c, ns, freed)
		node, a := placedCards(t, c, ns, "half-late")
		assert.Equal(t, "v100-0", node)
		assert.Equal(t, "2:500", a.String())
	})

	t.Run("a deleted 8-GPU job's cards are reused", func(t *testing.T) {
		node, _ := placedCards(t, c, ns, "eight-gpu")
		deleteGPUPod(t, c, ns, "eight-gpu")
		createGPUPod(t, c, ns, profile, gpuPodSpec{name: "eight-gpu-again", whole: 8, models: modelA100})
		again, a := placedCards(t, c, ns, "eight-gpu-again")
		assert.Equal(t, node, again)
		assert.Equal(t, "0,1,2,3,4,5,6,7", a.String())
	})
}

// dcgmExporter stands in for NVIDIA's DCGM exporter on simulated nodes: it
// serves per-card gauges with the exporter's metric names and labels for a
// real Prometheus to scrape.
type dcgmExporter struct {
	server           *httptest.Server
	util, used, free *prometheus.GaugeVec
}

func startDCGMExporter(t *testing.T) *dcgmExporter {
	t.Helper()
	reg := prometheus.NewRegistry()
	gauge := func(name string) *prometheus.GaugeVec {
		g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: "Simulated DCGM metric for Harbormaster tests."}, []string{"gpu", "Hostname"})
		reg.MustRegister(g)
		return g
	}
	e := &dcgmExporter{util: gauge("DCGM_FI_DEV_GPU_UTIL"), used: gauge("DCGM_FI_DEV_FB_USED"), free: gauge("DCGM_FI_DEV_FB_FREE")}
	e.server = httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(e.server.Close)
	return e
}

// set reports a card's utilisation (percent) and framebuffer (MiB of 16384).
func (e *dcgmExporter) set(node string, card int, util, usedMiB float64) {
	l := prometheus.Labels{"gpu": fmt.Sprint(card), "Hostname": node}
	e.util.With(l).Set(util)
	e.used.With(l).Set(usedMiB)
	e.free.With(l).Set(16384 - usedMiB)
}

func (e *dcgmExporter) target() string { return strings.TrimPrefix(e.server.URL, "http://") }

// TestGPUSchedulingWithRealDCGMMetrics feeds the plugin per-card load from
// a real Prometheus scraping DCGM-style metrics: a shared pod avoids a card
// whose framebuffer is nearly full, and once Prometheus is gone and the
// samples are stale the card is neutral again rather than blocked.
func TestGPUSchedulingWithRealDCGMMetrics(t *testing.T) {
	cp := framework.Start(t, framework.Options{})
	ctx := t.Context()
	exporter := startDCGMExporter(t)
	exporter.set("dcgm-0", 0, 95, 15000) // busy, 8% framebuffer free
	exporter.set("dcgm-0", 1, 5, 2000)   // idle
	prom := framework.RunPrometheus(t, framework.PrometheusOptions{Targets: []string{exporter.target()}})
	require.NoError(t, prom.WaitForSeries(ctx, "DCGM_FI_DEV_FB_FREE", 2, 60*time.Second))
	require.NoError(t, framework.CreateNodes(ctx, cp.Client, framework.NodeSpec{
		Name: "dcgm-0", CPU: "64", Memory: "256Gi", GPUs: 2, Labels: map[string]string{gpu.ModelLabel: modelT4},
	}))
	const profile = "harbormaster-gpu-dcgm"
	plugins := gpuPlugins() + fmt.Sprintf(`      utilization:
        weight: 50
        stalenessWindow: 3s
        prometheus:
          address: %s
          refreshInterval: 500ms
          timeout: 500ms
`, prom.URL)
	framework.RunScheduler(t, cp.SchedulerConfig(profile, plugins, false))
	ns := createNamespace(t, cp.Client, "gpu-dcgm", nil)
	c := cp.Client
	waitForPipelineMetric(t, profile, "harbormaster_utilization_last_successful_fetch_timestamp_seconds", `source="dcgm"`, func(v float64) bool { return v > 0 })

	for _, name := range []string{"s-0", "s-1"} {
		createGPUPod(t, c, ns, profile, gpuPodSpec{name: name, milli: 500})
		_, a := placedCards(t, c, ns, name)
		assert.Equal(t, "1:500", a.String(), "card 0 has too little free framebuffer for half a card")
	}
	createGPUPod(t, c, ns, profile, gpuPodSpec{name: "s-2", milli: 500})
	msg := waitForUnschedulable(t, c, ns, "s-2", 60*time.Second)
	assert.Contains(t, msg, "no GPU card with enough measured free memory")
	deleteGPUPod(t, c, ns, "s-2")

	// Without Prometheus the samples go stale: unknown load neither
	// blocks the card nor counts as idle.
	require.NoError(t, prom.Stop())
	waitForPipelineMetric(t, profile, "harbormaster_utilization_fetch_errors_total", `source="dcgm"`, func(v float64) bool { return v > 0 })
	time.Sleep(4 * time.Second) // past the 3s staleness window
	createGPUPod(t, c, ns, profile, gpuPodSpec{name: "s-3", milli: 500})
	_, a := placedCards(t, c, ns, "s-3")
	assert.Equal(t, "0:500", a.String())
}
