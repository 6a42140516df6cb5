package loadaware

import (
	"math"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"

	"github.com/harbormaster-dev/harbormaster/pkg/plugins/apis/config"
	"github.com/harbormaster-dev/harbormaster/pkg/utilization"
)

// NeutralScore is what a node gets for a resource whose utilisation is
// unknown: the middle of the range, so missing data neither attracts pods
// (as zero load would) nor repels them.
const NeutralScore = framework.MaxNodeScore / 2

// scoreFunc maps a utilisation fraction in [0, 1] and a target fraction to
// a score in [MinNodeScore, MaxNodeScore].
type scoreFunc func(util, target float64) int64

// strategies maps each configurable strategy to its score function, as the
// in-tree NodeResourcesFit maps its scoring strategy types to scorers.
func strategies() map[config.StrategyType]scoreFunc {
	return map[config.StrategyType]scoreFunc{
		config.LeastUtilized:     leastUtilizedScore,
		config.TargetUtilization: targetUtilizationScore,
	}
}

// leastUtilizedScore is linear in idle capacity: an idle node scores
// MaxNodeScore, a saturated one MinNodeScore.
func leastUtilizedScore(util, _ float64) int64 {
	return roundScore(float64(framework.MaxNodeScore) * (1 - clamp01(util)))
}

// targetUtilizationScore packs nodes towards target and backs off beyond
// it, following the piecewise-linear best-fit function of Trimaran's
// TargetLoadPacking (kubernetes-sigs/scheduler-plugins KEP 61, "Trimaran:
// Real Load Aware Scheduling"). Below the target the score rises linearly
// from the target percent (idle node) to the maximum (node at the target);
// above it the score restarts at the target percent and falls linearly to
// zero at 100%. Every node below the target thus scores at least as high as
// any node above it, and among those below, the fuller one wins.
func targetUtilizationScore(util, target float64) int64 {
	util = clamp01(util)
	maxScore := float64(framework.MaxNodeScore)
	t := target * maxScore // the score at both ends of the jump
	if util <= target {
		return roundScore(t + (maxScore-t)*util/target)
	}
	return roundScore(t * (1 - util) / (1 - target))
}

func clamp01(v float64) float64 { return math.Min(math.Max(v, 0), 1) }

func roundScore(v float64) int64 {
	return int64(math.Round(math.Min(math.Max(v, float64(framework.MinNodeScore)), float64(framework.MaxNodeScore))))
}

// resourceWeight is one scored resource.
type resourceWeight struct {
	resource utilization.Resource
	weight   int64
	target   float64 // fraction
}

// scorer holds everything scoring needs besides the cycle's inputs; it is
// built once from the args.
type scorer struct {
	score      scoreFunc
	resources  []resourceWeight
	estimation estimation
}

func newScorer(args *config.LoadAwareArgs) *scorer {
	s := &scorer{
		score:      strategies()[args.ScoringStrategy.Type],
		estimation: estimation{mode: args.Estimation.Mode, requestPercent: *args.Estimation.RequestPercent},
	}
	for _, r := range args.ScoringStrategy.Resources {
		if r.Weight > 0 {
			s.resources = append(s.resources, resourceWeight{
				resource: utilization.Resource(r.Name), weight: r.Weight, target: float64(r.TargetPercent) / 100,
			})
		}
	}
	return s
}

// boundAtFunc reports when a pod was bound; false if not seen bound yet.
type boundAtFunc func(types.UID) (time.Time, bool)

// reading is a node's utilisation of one resource as scored.
type reading struct {
	Known bool
	// Measured is the sample's value; Estimated what pods bound since the
	// sample, plus the pod being scheduled, are assumed to add.
	Measured, Estimated float64
	Source              string
	SampleTime          time.Time
	// PendingPods were bound after the sample was taken.
	PendingPods int
}

// Util is the utilisation the score is computed from.
func (r reading) Util() float64 { return r.Measured + r.Estimated }

// assessment is one node's score and how it came about.
type assessment struct {
	Node     string
	Score    int64
	Readings map[utilization.Resource]reading
}

// assess scores one node for pod. It is a pure function of its inputs:
// podUsage is the pod's own estimate, snap the cycle's utilisation and
// boundAt the bind tracker.
func (s *scorer) assess(podUsage usage, nodeInfo fwk.NodeInfo, snap utilization.Snapshot, boundAt boundAtFunc) assessment {
	node := nodeInfo.Node()
	a := assessment{Node: node.Name, Readings: make(map[utilization.Resource]reading, len(s.resources))}
	var weighted, weights int64
	for _, rw := range s.resources {
		r := s.read(podUsage, nodeInfo, snap, boundAt, rw.resource)
		a.Readings[rw.resource] = r
		score := NeutralScore
		if r.Known {
			score = s.score(r.Util(), rw.target)
		}
		weighted += score * rw.weight
		weights += rw.weight
	}
	a.Score = NeutralScore
	if weights > 0 {
		a.Score = roundScore(float64(weighted) / float64(weights))
	}
	return a
}

// read combines a node's sample with estimates of the pods the sample
// cannot reflect: those bound after its timestamp, including the ones the
// scheduler has assumed but not yet seen bound, and the pod being placed.
func (s *scorer) read(podUsage usage, nodeInfo fwk.NodeInfo, snap utilization.Snapshot, boundAt boundAtFunc, r utilization.Resource) reading {
	sample, ok := snap.ForNode(nodeInfo.Node(), r)
	if !ok {
		return reading{}
	}
	out := reading{Known: true, Measured: sample.Value, Source: sample.Source, SampleTime: sample.Time}
	if s.estimation.mode == config.EstimateNone {
		return out
	}
	pending := podUsage.of(r)
	for _, pi := range nodeInfo.GetPods() {
		p := pi.GetPod()
		if at, seen := boundAt(p.UID); seen && !at.After(sample.Time) {
			continue
		}
		pending += s.estimation.podUsage(p).of(r)
		out.PendingPods++
	}
	if capacity := allocatable(nodeInfo, r); capacity > 0 {
		out.Estimated = float64(pending) / float64(capacity)
	}
	return out
}

func allocatable(nodeInfo fwk.NodeInfo, r utilization.Resource) int64 {
	switch r {
	case utilization.CPU:
		return nodeInfo.GetAllocatable().GetMilliCPU()
	case utilization.Memory:
		return nodeInfo.GetAllocatable().GetMemory()
	}
	return 0
}

// overThreshold returns the first resource whose measured utilisation is
// above its threshold. Only measured values count: estimates are a hint for
// ranking, not evidence to reject a node on, and unknown never rejects.
func overThreshold(node *v1.Node, snap utilization.Snapshot, thresholds []config.ResourceThreshold) (utilization.Resource, float64, bool) {
	for _, t := range thresholds {
		r := utilization.Resource(t.Name)
		sample, ok := snap.ForNode(node, r)
		if ok && sample.Value*100 > float64(t.Percent) {
			return r, sample.Value, true
		}
	}
	return "", 0, false
}

// isCritical reports whether a pod is exempt from the utilisation filter:
// system-critical priority or a system-* priority class. Keeping node agents
// and cluster add-ons schedulable on busy nodes matters more than load.
func isCritical(pod *v1.Pod) bool {
	if pod.Spec.Priority != nil && *pod.Spec.Priority >= systemCriticalPriority {
		return true
	}
	return strings.HasPrefix(pod.Spec.PriorityClassName, systemPriorityClassPrefix)
}

// chosenAndRunnerUp returns the assessment of the chosen node and the best
// other one by this plugin's score (ties broken by name); ok is false if
// the chosen node was not scored.
func chosenAndRunnerUp(assessments map[string]*assessment, chosen string) (*assessment, *assessment, bool) {
	c, ok := assessments[chosen]
	if !ok {
		return nil, nil, false
	}
	var runnerUp *assessment
	for name, a := range assessments {
		if name == chosen {
			continue
		}
		if runnerUp == nil || a.Score > runnerUp.Score || (a.Score == runnerUp.Score && a.Node < runnerUp.Node) {
			runnerUp = a
		}
	}
	return c, runnerUp, true
}
