package main

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/klog/v2"

	"github.com/harbormaster-dev/harbormaster/test/framework"
)

// The simulated node exporter's metrics: the fraction of a node's CPU and
// memory in use, per node.
const (
	demoCPUMetric    = "harbormaster_demo_node_cpu_utilisation"
	demoMemoryMetric = "harbormaster_demo_node_memory_utilisation"
)

// The simulated DCGM exporter's metrics, named and labelled as NVIDIA's
// dcgm-exporter names them: one series per card.
const (
	dcgmUtilMetric   = "DCGM_FI_DEV_GPU_UTIL" // percent
	dcgmFBUsedMetric = "DCGM_FI_DEV_FB_USED"  // MiB
	dcgmFBFreeMetric = "DCGM_FI_DEV_FB_FREE"  // MiB
)

// A100 80GB: the framebuffer DCGM reports, in MiB, and the model name as
// DCGM spells it (GPU feature discovery's node label uses dashes).
const (
	demoGPUFramebufferMiB = 81920
	demoGPUModel          = "NVIDIA A100-SXM4-80GB"
)

// startNodeExporter serves the simulated per-node CPU and memory
// utilisation, as node_exporter and a recording rule would, until ctx
// ends, and returns its host:port.
func startNodeExporter(ctx context.Context, nodes []framework.NodeSpec) (string, error) {
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
	return serveMetrics(ctx, reg)
}

// startDCGMExporter serves DCGM-style per-card metrics for the GPU nodes,
// as a dcgm-exporter DaemonSet would, until ctx ends, and returns its
// host:port. Nothing schedules by them yet; Prometheus scrapes them so GPU
// placement can.
func startDCGMExporter(ctx context.Context, nodes []framework.NodeSpec) (string, error) {
	reg := prometheus.NewRegistry()
	labels := []string{"gpu", "UUID", "device", "modelName", "Hostname"}
	util := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: dcgmUtilMetric, Help: "GPU utilization (in %)."}, labels)
	used := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: dcgmFBUsedMetric, Help: "Framebuffer memory used (in MiB)."}, labels)
	free := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: dcgmFBFreeMetric, Help: "Framebuffer memory free (in MiB)."}, labels)
	reg.MustRegister(util, used, free)
	load := demoGPULoad()
	for _, n := range nodes {
		for card := range int(n.GPUs) {
			pct := 0.0 // cards without simulated load are idle
			if cards := load[n.Name]; card < len(cards) {
				pct = cards[card]
			}
			// A busy card holds most of its framebuffer; an idle one a
			// little for the driver.
			usedMiB := float64(demoGPUFramebufferMiB) * (0.01 + 0.85*pct/100)
			values := []string{strconv.Itoa(card), cardUUID(n.Name, card), "nvidia" + strconv.Itoa(card), demoGPUModel, n.Name}
			util.WithLabelValues(values...).Set(pct)
			used.WithLabelValues(values...).Set(float64(int(usedMiB)))
			free.WithLabelValues(values...).Set(float64(demoGPUFramebufferMiB - int(usedMiB)))
		}
	}
	return serveMetrics(ctx, reg)
}

// cardUUID is a stable, made-up UUID in NVIDIA's format for a card.
func cardUUID(node string, card int) string {
	return fmt.Sprintf("GPU-%08x-0000-4000-8000-%012x", crc32.ChecksumIEEE([]byte(node)), card)
}

// serveMetrics serves reg on /metrics of a free local port until ctx ends.
func serveMetrics(ctx context.Context, reg *prometheus.Registry) (string, error) {
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

// demoGPULoad is the simulated utilisation of each card, in percent:
// gpu-0 runs an earlier training job on half its cards, gpu-1 is nearly
// idle.
func demoGPULoad() map[string][]float64 {
	return map[string][]float64{
		"gpu-0": {92, 88, 95, 90, 0, 0, 0, 0},
		"gpu-1": {35, 0, 0, 0, 0, 0, 0, 0},
	}
}

// gpuSummary describes a GPU node's cards for the report, e.g. "8 A100,
// 4 busy".
func gpuSummary(n framework.NodeSpec) string {
	if n.GPUs == 0 {
		return "-"
	}
	busy := 0
	for _, pct := range demoGPULoad()[n.Name] {
		if pct >= 50 {
			busy++
		}
	}
	model := strings.TrimPrefix(strings.SplitN(demoGPUModel, "-", 2)[0], "NVIDIA ")
	return fmt.Sprintf("%d %s, %d busy", n.GPUs, model, busy)
}
