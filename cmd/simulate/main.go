// Command simulate replays openb GPU cluster traces through the scheduling
// framework with the HarbormasterGPU plugin, once per policy and seed, and
// reports how much GPU capacity each policy allocates (docs/gpu.md).
//
//	go run ./cmd/simulate -traces default,gpushare40 -seeds 42-51 -out /tmp/sim
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"k8s.io/klog/v2"
	"k8s.io/kubernetes/pkg/scheduler/metrics"

	"github.com/harbormaster-dev/harbormaster/pkg/gpusim"
	"github.com/harbormaster-dev/harbormaster/pkg/plugins/apis/config"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "simulate:", err)
		os.Exit(1)
	}
}

func run() error {
	defaultDir, _ := gpusim.DataDir()
	dataDir := flag.String("data", defaultDir, "directory of the openb trace (env "+gpusim.DataDirEnv+")")
	traces := flag.String("traces", "default", "comma-separated pod lists: default, gpushare40, multigpu20, gpuspec10, cpu050")
	policyList := flag.String("policies", "all", "comma-separated policies: "+policyNames()+", or all")
	seeds := flag.String("seeds", "42", "seeds: a list (42,43) or a range (42-51)")
	inflation := flag.Float64("inflation", 1.3, "grow the workload until its GPU request would exceed this multiple of capacity")
	out := flag.String("out", "", "directory for curve.csv, summary.md and a <trace>.png plot per trace (none if empty)")
	step := flag.Float64("curve-step", 0.5, "curve.csv resolution in percent of arrived GPU request")
	parallelism := flag.Int("parallelism", runtime.NumCPU(), "framework parallelism")
	weights := flag.String("weights", "nvidia.com/gpu=1", "resource weights of the resource-based strategies, e.g. nvidia.com/gpu=1,cpu=1,memory=1")
	ahead := flag.Bool("observe-ahead", false, "let the workload mix see every pod before the first is placed (the paper's known target workload)")
	replot := flag.String("plot", "", "redraw <trace>.png plots into -out from a curve.csv written earlier, without replaying")
	klog.InitFlags(nil)
	_ = flag.Set("v", "0")
	flag.Parse()

	if *replot != "" {
		return plotFromCSV(*replot, *out)
	}
	args, err := argsFor(*weights)
	if err != nil {
		return err
	}
	seedList, err := parseSeeds(*seeds)
	if err != nil {
		return err
	}
	policies := gpusim.Policies()
	if *policyList != "all" {
		policies = nil
		for _, name := range strings.Split(*policyList, ",") {
			p, err := gpusim.ParsePolicy(strings.TrimSpace(name))
			if err != nil {
				return err
			}
			policies = append(policies, p)
		}
	}
	nodes, err := gpusim.LoadNodes(filepath.Join(*dataDir, gpusim.NodeListFile))
	if err != nil {
		return err
	}
	var capacity int64
	for _, n := range nodes {
		capacity += int64(n.GPUs) * 1000
	}
	metrics.Register() // the framework records into the scheduler's metric vectors
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	var curve, summary *os.File
	if *out != "" {
		if err := os.MkdirAll(*out, 0o755); err != nil {
			return err
		}
		if curve, err = os.Create(filepath.Join(*out, "curve.csv")); err != nil {
			return err
		}
		defer curve.Close()
		if summary, err = os.Create(filepath.Join(*out, "summary.md")); err != nil {
			return err
		}
		defer summary.Close()
	}
	fmt.Printf("nodes %d, GPUs %d, parallelism %d, GOMAXPROCS %d\n", len(nodes), capacity/1000, *parallelism, runtime.GOMAXPROCS(0))
	header := true
	for _, trace := range strings.Split(*traces, ",") {
		trace = strings.TrimSpace(trace)
		pods, err := gpusim.LoadPods(filepath.Join(*dataDir, gpusim.PodListPrefix+trace+".csv"))
		if err != nil {
			return err
		}
		var sums []gpusim.Summary
		results := map[gpusim.Policy][]*gpusim.Result{}
		for _, policy := range policies {
			for _, seed := range seedList {
				workload := gpusim.Inflate(pods, capacity, *inflation, rand.New(rand.NewPCG(seed, 0x1f1a7e)))
				bar := newProgress(fmt.Sprintf("%s %s seed %d", trace, policy, seed), len(workload))
				start := time.Now()
				res, err := gpusim.Replay(ctx, gpusim.Run{Nodes: nodes, Pods: workload, Policy: policy, Seed: seed, Args: args, ObserveAhead: *ahead, Parallelism: *parallelism, Progress: bar.update})
				bar.done()
				if err != nil {
					return err
				}
				s := gpusim.Summarize(res)
				sums = append(sums, s)
				if *out != "" {
					res.PlacementTimes = nil // keep the curve for the plot, not every duration
					results[policy] = append(results[policy], res)
				}
				fmt.Printf("%-10s %-10s seed %d: %d pods in %v; allocated %.2f%% at 100%% arrived, %.2f%% at %.1f%%; GPU pods not placed %.2f%%\n",
					trace, policy, seed, len(workload), time.Since(start).Round(time.Millisecond), s.AllocatedAt100, s.AllocatedAtEnd, s.ArrivedAtEnd, 100*s.FailedGPUPodShare)
				if curve != nil {
					if err := gpusim.WriteCurveCSV(curve, trace, res, *step, header); err != nil {
						return err
					}
					header = false
				}
			}
		}
		aggs := gpusim.AggregateByPolicy(sums)
		if err := gpusim.WriteSummaryTable(os.Stdout, trace, aggs); err != nil {
			return err
		}
		if summary != nil {
			if err := gpusim.WriteSummaryTable(summary, trace, aggs); err != nil {
				return err
			}
			if err := writePlot(filepath.Join(*out, trace+".png"), trace, results, policies); err != nil {
				return fmt.Errorf("plotting %s: %w", trace, err)
			}
		}
	}
	return nil
}

// argsFor builds plugin args with the given resource weights.
func argsFor(weights string) (*config.GPUArgs, error) {
	s := &config.GPUScoringStrategy{}
	for _, kv := range strings.Split(weights, ",") {
		name, w, ok := strings.Cut(strings.TrimSpace(kv), "=")
		v, err := strconv.ParseInt(w, 10, 64)
		if !ok || err != nil {
			return nil, fmt.Errorf("bad weight %q: want name=integer", kv)
		}
		s.Resources = append(s.Resources, config.GPUResourceWeight{Name: name, Weight: v})
	}
	args := &config.GPUArgs{ScoringStrategy: s}
	// Validate now rather than once per replay.
	if _, err := config.DecodeGPUArgs(args); err != nil {
		return nil, err
	}
	return args, nil
}

// plotFromCSV draws one plot per trace of a curve CSV.
func plotFromCSV(path, out string) error {
	if out == "" {
		return fmt.Errorf("-plot needs -out")
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	traces, byTrace, err := gpusim.ReadCurveCSV(f)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	for _, trace := range traces {
		byPolicy := map[gpusim.Policy][]*gpusim.Result{}
		var order []gpusim.Policy
		for _, r := range byTrace[trace] {
			if _, ok := byPolicy[r.Policy]; !ok {
				order = append(order, r.Policy)
			}
			byPolicy[r.Policy] = append(byPolicy[r.Policy], r)
		}
		if err := writePlot(filepath.Join(out, trace+".png"), trace, byPolicy, order); err != nil {
			return err
		}
	}
	return nil
}

func policyNames() string {
	var names []string
	for _, p := range gpusim.Policies() {
		names = append(names, string(p))
	}
	return strings.Join(names, ", ")
}

func parseSeeds(s string) ([]uint64, error) {
	if lo, hi, ok := strings.Cut(s, "-"); ok {
		a, err1 := strconv.ParseUint(lo, 10, 64)
		b, err2 := strconv.ParseUint(hi, 10, 64)
		if err1 != nil || err2 != nil || b < a {
			return nil, fmt.Errorf("bad seed range %q", s)
		}
		var out []uint64
		for v := a; v <= b; v++ {
			out = append(out, v)
		}
		return out, nil
	}
	var out []uint64
	for _, part := range strings.Split(s, ",") {
		v, err := strconv.ParseUint(strings.TrimSpace(part), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("bad seed %q", part)
		}
		out = append(out, v)
	}
	return out, nil
}

// progress draws a bar on stderr when it is a terminal.
type progress struct {
	label string
	total int
	tty   bool
	last  time.Time
}

func newProgress(label string, total int) *progress {
	fi, err := os.Stderr.Stat()
	return &progress{label: label, total: total, tty: err == nil && fi.Mode()&os.ModeCharDevice != 0}
}

func (p *progress) update(done int) {
	if !p.tty || (time.Since(p.last) < 100*time.Millisecond && done != p.total) {
		return
	}
	p.last = time.Now()
	const width = 40
	filled := width * done / max(p.total, 1)
	fmt.Fprintf(os.Stderr, "\r%-32s [%s%s] %5.1f%%", p.label, strings.Repeat("#", filled), strings.Repeat(".", width-filled), 100*float64(done)/float64(max(p.total, 1)))
}

func (p *progress) done() {
	if p.tty {
		fmt.Fprint(os.Stderr, "\r\033[K")
	}
}
