package gpusim

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Summary is one replay reduced to the figures the paper reports.
type Summary struct {
	Policy Policy
	Seed   uint64
	// AllocatedAt100 and AllocatedAtEnd are allocated GPU capacity in
	// percent when the arrived GPU request first reaches 100% of capacity,
	// and after the last pod.
	AllocatedAt100, AllocatedAtEnd float64
	ArrivedAtEnd                   float64
	// FailedGPUPodShare is the fraction of GPU pods not placed.
	FailedGPUPodShare float64
	// FirstFailureArrived and UnallocatedAtFirstFailure are the arrived
	// request and the unallocated capacity, in percent, when the first GPU
	// pod could not be placed (NaN if none failed).
	FirstFailureArrived, UnallocatedAtFirstFailure float64
	// MeanPlacement and P99Placement are scheduling cycle durations.
	MeanPlacement, P99Placement time.Duration
}

// Summarize reduces a result.
func Summarize(r *Result) Summary {
	s := Summary{Policy: r.Policy, Seed: r.Seed, FirstFailureArrived: math.NaN(), UnallocatedAtFirstFailure: math.NaN()}
	pct := func(v int64) float64 { return 100 * float64(v) / float64(r.CapacityMilli) }
	s.AllocatedAt100 = math.NaN()
	for _, p := range r.Curve {
		if p.ArrivedMilli >= r.CapacityMilli {
			s.AllocatedAt100 = pct(p.AllocatedMilli)
			break
		}
	}
	if n := len(r.Curve); n > 0 {
		s.AllocatedAtEnd = pct(r.Curve[n-1].AllocatedMilli)
		s.ArrivedAtEnd = pct(r.Curve[n-1].ArrivedMilli)
	}
	if r.GPUPods > 0 {
		s.FailedGPUPodShare = float64(r.FailedGPUPods) / float64(r.GPUPods)
	}
	if r.FirstFailure >= 0 {
		p := r.Curve[r.FirstFailure]
		s.FirstFailureArrived = pct(p.ArrivedMilli)
		s.UnallocatedAtFirstFailure = 100 - pct(p.AllocatedMilli)
	}
	if len(r.PlacementTimes) > 0 {
		var total time.Duration
		for _, d := range r.PlacementTimes {
			total += d
		}
		s.MeanPlacement = total / time.Duration(len(r.PlacementTimes))
		sorted := slices.Clone(r.PlacementTimes)
		slices.Sort(sorted)
		s.P99Placement = sorted[len(sorted)*99/100]
	}
	return s
}

// WriteCurveCSV writes the curve sampled every step percent of arrived
// request (and the last point): trace,policy,seed,arrived_pct,allocated_pct.
func WriteCurveCSV(w io.Writer, trace string, r *Result, step float64, header bool) error {
	if header {
		if _, err := fmt.Fprintln(w, "trace,policy,seed,arrived_pct,allocated_pct"); err != nil {
			return err
		}
	}
	next := 0.0
	for i, p := range r.Curve {
		arrived := 100 * float64(p.ArrivedMilli) / float64(r.CapacityMilli)
		if arrived < next && i != len(r.Curve)-1 {
			continue
		}
		for next <= arrived {
			next += step
		}
		allocated := 100 * float64(p.AllocatedMilli) / float64(r.CapacityMilli)
		if _, err := fmt.Fprintf(w, "%s,%s,%d,%.3f,%.3f\n", trace, r.Policy, r.Seed, arrived, allocated); err != nil {
			return err
		}
	}
	return nil
}

// Aggregate is the mean of a policy's summaries over seeds.
type Aggregate struct {
	Policy                                      Policy
	Seeds                                       int
	AllocatedAt100, AllocatedAt100Std           float64
	AllocatedAtEnd, FailedGPUPodShare           float64
	FirstFailureArrived, UnallocatedAtFirstFail float64
	MeanPlacement, P99Placement                 time.Duration
}

// AggregateByPolicy averages summaries per policy, in the order policies
// first appear.
func AggregateByPolicy(sums []Summary) []Aggregate {
	var order []Policy
	by := map[Policy][]Summary{}
	for _, s := range sums {
		if _, ok := by[s.Policy]; !ok {
			order = append(order, s.Policy)
		}
		by[s.Policy] = append(by[s.Policy], s)
	}
	var out []Aggregate
	for _, p := range order {
		ss := by[p]
		a := Aggregate{Policy: p, Seeds: len(ss)}
		var at100 []float64
		var placement, p99 time.Duration
		for _, s := range ss {
			at100 = append(at100, s.AllocatedAt100)
			a.AllocatedAtEnd += s.AllocatedAtEnd / float64(len(ss))
			a.FailedGPUPodShare += s.FailedGPUPodShare / float64(len(ss))
			a.FirstFailureArrived += s.FirstFailureArrived / float64(len(ss))
			a.UnallocatedAtFirstFail += s.UnallocatedAtFirstFailure / float64(len(ss))
			placement += s.MeanPlacement
			p99 = max(p99, s.P99Placement)
		}
		a.AllocatedAt100, a.AllocatedAt100Std = meanStd(at100)
		a.MeanPlacement = placement / time.Duration(len(ss))
		a.P99Placement = p99
		out = append(out, a)
	}
	return out
}

func meanStd(v []float64) (float64, float64) {
	var sum float64
	for _, x := range v {
		sum += x
	}
	mean := sum / float64(len(v))
	var sq float64
	for _, x := range v {
		sq += (x - mean) * (x - mean)
	}
	if len(v) < 2 {
		return mean, 0
	}
	return mean, math.Sqrt(sq / float64(len(v)-1))
}

// WriteSummaryTable writes a Markdown table of aggregates. Unallocated
// GPUs at 100% arrived are also given relative to the best baseline's.
func WriteSummaryTable(w io.Writer, trace string, aggs []Aggregate) error {
	_, err := fmt.Fprintf(w, "\ntrace %s\n\n| policy | seeds | allocated GPU %% at 100%% arrived | unallocated vs FGD | allocated %% at end | GPU pods not placed | first failure at arrived %% | unallocated %% at first failure | placement mean / p99 |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n", trace)
	if err != nil {
		return err
	}
	var fgd *Aggregate
	for i := range aggs {
		if aggs[i].Policy == Policy("FGD") {
			fgd = &aggs[i]
		}
	}
	for _, a := range aggs {
		ratio := "—"
		if fgd != nil && a.Policy != fgd.Policy && 100-fgd.AllocatedAt100 > 0 {
			ratio = fmt.Sprintf("%.2fx", (100-a.AllocatedAt100)/(100-fgd.AllocatedAt100))
		}
		if _, err := fmt.Fprintf(w, "| %s | %d | %.2f ± %.2f | %s | %.2f | %.2f%% | %.1f | %.2f | %v / %v |\n",
			a.Policy, a.Seeds, a.AllocatedAt100, a.AllocatedAt100Std, ratio, a.AllocatedAtEnd, 100*a.FailedGPUPodShare,
			a.FirstFailureArrived, a.UnallocatedAtFirstFail, a.MeanPlacement.Round(time.Microsecond), a.P99Placement.Round(time.Microsecond)); err != nil {
			return err
		}
	}
	return nil
}

// MeanCurve averages the curves of several replays (seeds) of one policy
// on a grid of arrived request, every step percent up to the smallest
// final arrival among them: at each grid point, a replay's allocated
// percentage is that of its last pod arrived by then.
func MeanCurve(results []*Result, step float64) (arrived, allocated []float64) {
	if len(results) == 0 || step <= 0 {
		return nil, nil
	}
	end := math.Inf(1)
	for _, r := range results {
		if n := len(r.Curve); n > 0 {
			end = math.Min(end, 100*float64(r.Curve[n-1].ArrivedMilli)/float64(r.CapacityMilli))
		} else {
			return nil, nil
		}
	}
	for x := 0.0; x <= end+1e-9; x += step {
		var sum float64
		for _, r := range results {
			limit := int64(x / 100 * float64(r.CapacityMilli))
			i := sort.Search(len(r.Curve), func(i int) bool { return r.Curve[i].ArrivedMilli > limit })
			if i > 0 {
				sum += 100 * float64(r.Curve[i-1].AllocatedMilli) / float64(r.CapacityMilli)
			}
		}
		arrived = append(arrived, x)
		allocated = append(allocated, sum/float64(len(results)))
	}
	return arrived, allocated
}

// ReadCurveCSV reads what WriteCurveCSV wrote back into results, one per
// trace, policy and seed, in order of first appearance, so plots can be
// redrawn without replaying. Their capacity is 100000 (percent x 1000).
func ReadCurveCSV(r io.Reader) (traces []string, byTrace map[string][]*Result, err error) {
	records, err := csv.NewReader(r).ReadAll()
	if err != nil {
		return nil, nil, err
	}
	if len(records) == 0 || strings.Join(records[0], ",") != "trace,policy,seed,arrived_pct,allocated_pct" {
		return nil, nil, fmt.Errorf("not a curve CSV: want the header trace,policy,seed,arrived_pct,allocated_pct")
	}
	byTrace = map[string][]*Result{}
	index := map[string]*Result{}
	for i, rec := range records[1:] {
		if len(rec) != 5 {
			return nil, nil, fmt.Errorf("line %d: want 5 fields", i+2)
		}
		seed, err1 := strconv.ParseUint(rec[2], 10, 64)
		arrived, err2 := strconv.ParseFloat(rec[3], 64)
		allocated, err3 := strconv.ParseFloat(rec[4], 64)
		if err := errors.Join(err1, err2, err3); err != nil {
			return nil, nil, fmt.Errorf("line %d: %w", i+2, err)
		}
		key := rec[0] + "/" + rec[1] + "/" + rec[2]
		res, ok := index[key]
		if !ok {
			res = &Result{Policy: Policy(rec[1]), Seed: seed, CapacityMilli: 100000, FirstFailure: -1}
			index[key] = res
			if _, seen := byTrace[rec[0]]; !seen {
				traces = append(traces, rec[0])
			}
			byTrace[rec[0]] = append(byTrace[rec[0]], res)
		}
		res.Curve = append(res.Curve, Point{ArrivedMilli: int64(math.Round(arrived * 1000)), AllocatedMilli: int64(math.Round(allocated * 1000))})
	}
	return traces, byTrace, nil
}
