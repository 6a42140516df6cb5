package loadaware

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	"k8s.io/utils/ptr"

	"github.com/harbormaster-dev/harbormaster/pkg/plugins/apis/config"
	"github.com/harbormaster-dev/harbormaster/pkg/utilization"
)

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func TestLeastUtilizedScore(t *testing.T) {
	for _, tc := range []struct {
		util float64
		want int64
	}{
		{0, 100}, {0.1, 90}, {0.25, 75}, {0.5, 50}, {0.994, 1}, {1, 0},
		{1.3, 0},    // estimates can push past 100%: clamped
		{-0.2, 100}, // never produced by the store; clamped anyway
	} {
		assert.Equal(t, tc.want, leastUtilizedScore(tc.util, 0), "util %v", tc.util)
	}
}

func TestTargetUtilizationScore(t *testing.T) {
	for _, tc := range []struct {
		util, target float64
		want         int64
	}{
		// Below the target: from target% at idle up to 100 at the target.
		{0, 0.6, 60},
		{0.3, 0.6, 80},
		{0.6, 0.6, 100},
		// Above: restart at target% and fall to 0 at 100%.
		{0.61, 0.6, 59},
		{0.8, 0.6, 30},
		{1, 0.6, 0},
		{1.5, 0.6, 0},
		// Trimaran's default target of 40%.
		{0.2, 0.4, 70},
		{0.7, 0.4, 20},
		{0.01, 0.99, 99},
	} {
		assert.Equal(t, tc.want, targetUtilizationScore(tc.util, tc.target), "util %v target %v", tc.util, tc.target)
	}
}

// The property the strategy exists for: any node below the target scores at
// least as high as any node above it.
func TestTargetUtilizationPrefersBelowTarget(t *testing.T) {
	for _, target := range []float64{0.1, 0.4, 0.6, 0.9} {
		for below := 0.0; below <= target; below += 0.01 {
			for above := target + 0.01; above <= 1; above += 0.05 {
				require.GreaterOrEqual(t, targetUtilizationScore(below, target), targetUtilizationScore(above, target),
					"target %v: %v vs %v", target, below, above)
			}
		}
	}
}

func TestEveryConfigStrategyHasAScorer(t *testing.T) {
	for s := range config.Strategies() {
		assert.NotNil(t, strategies()[s], "strategy %s", s)
	}
	assert.Len(t, strategies(), len(config.Strategies()))
}

func defaultArgs(t *testing.T, mutate func(*config.LoadAwareArgs)) *config.LoadAwareArgs {
	t.Helper()
	args := &config.LoadAwareArgs{Sources: &config.SourcesArgs{Prometheus: &config.PrometheusArgs{Address: "http://p:9090"}}}
	config.SetDefaultsLoadAwareArgs(args)
	if mutate != nil {
		mutate(args)
	}
	require.NoError(t, config.ValidateLoadAwareArgs(nil, args))
	return args
}

func testNode(name, cpu, mem string) *v1.Node {
	alloc := v1.ResourceList{v1.ResourceCPU: resource.MustParse(cpu), v1.ResourceMemory: resource.MustParse(mem), v1.ResourcePods: resource.MustParse("110")}
	return &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: v1.NodeStatus{Capacity: alloc, Allocatable: alloc}}
}

func testPod(name, cpu, mem string) *v1.Pod {
	p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID(name)},
		Spec: v1.PodSpec{Containers: []v1.Container{{Name: "c"}}}}
	req := v1.ResourceList{}
	if cpu != "" {
		req[v1.ResourceCPU] = resource.MustParse(cpu)
	}
	if mem != "" {
		req[v1.ResourceMemory] = resource.MustParse(mem)
	}
	p.Spec.Containers[0].Resources.Requests = req
	return p
}

func nodeInfo(node *v1.Node, pods ...*v1.Pod) fwk.NodeInfo {
	ni := framework.NewNodeInfo()
	ni.SetNode(node)
	for _, p := range pods {
		p = p.DeepCopy()
		p.Spec.NodeName = node.Name
		ni.AddPod(p)
	}
	return ni
}

func cpuSample(node string, v float64, at time.Time) utilization.Sample {
	return utilization.Sample{Node: node, Resource: utilization.CPU, Value: v, Time: at, Source: "prometheus"}
}

func memSample(node string, v float64, at time.Time) utilization.Sample {
	return utilization.Sample{Node: node, Resource: utilization.Memory, Value: v, Time: at, Source: "prometheus"}
}

func boundTimes(m map[string]time.Time) boundAtFunc {
	return func(uid types.UID) (time.Time, bool) {
		at, ok := m[string(uid)]
		return at, ok
	}
}

func TestAssess(t *testing.T) {
	sampleAt := t0.Add(-10 * time.Second)
	before, after := sampleAt.Add(-time.Minute), sampleAt.Add(time.Second)
	node := testNode("n1", "10", "10Gi")
	incoming := testPod("incoming", "1", "1Gi")

	for _, tc := range []struct {
		name    string
		args    func(*config.LoadAwareArgs)
		pods    []*v1.Pod
		bound   map[string]time.Time
		samples []utilization.Sample
		want    int64
		cpu     *reading
	}{
		{
			name: "no data at all is neutral",
			want: NeutralScore,
		},
		{
			name:    "stale data is neutral",
			samples: []utilization.Sample{cpuSample("n1", 0.1, t0.Add(-time.Hour)), memSample("n1", 0.1, t0.Add(-time.Hour))},
			want:    NeutralScore,
		},
		{
			name:    "measured plus the incoming pod (10% cpu, 10% mem)",
			samples: []utilization.Sample{cpuSample("n1", 0.2, sampleAt), memSample("n1", 0.4, sampleAt)},
			want:    (70 + 50) / 2,
			cpu:     &reading{Known: true, Measured: 0.2, Estimated: 0.1, Source: "prometheus", SampleTime: sampleAt},
		},
		{
			name:    "unknown memory is neutral while cpu counts",
			samples: []utilization.Sample{cpuSample("n1", 0.2, sampleAt)},
			want:    (70 + NeutralScore) / 2,
		},
		{
			name: "pods bound after the sample are estimated, earlier ones are in the sample",
			pods: []*v1.Pod{testPod("old", "2", "2Gi"), testPod("new", "2", "0"), testPod("assumed", "1", "1Gi")},
			// "assumed" is in the snapshot but not yet seen bound.
			bound:   map[string]time.Time{"old": before, "new": after},
			samples: []utilization.Sample{cpuSample("n1", 0.2, sampleAt), memSample("n1", 0.2, sampleAt)},
			// cpu: 0.2 + (2+1+1)/10 = 0.6 -> 40; mem: 0.2 + (200Mi default + 1Gi + 1Gi)/10Gi
			want: 40/2 + leastUtilizedScore(0.2+(2*1024+200)/(10*1024.0), 0)/2,
			cpu:  &reading{Known: true, Measured: 0.2, Estimated: 0.4, Source: "prometheus", SampleTime: sampleAt, PendingPods: 2},
		},
		{
			name: "estimation off ignores pending pods and the incoming pod",
			args: func(a *config.LoadAwareArgs) { a.Estimation.Mode = config.EstimateNone },
			pods: []*v1.Pod{testPod("new", "4", "")}, bound: map[string]time.Time{"new": after},
			samples: []utilization.Sample{cpuSample("n1", 0.2, sampleAt), memSample("n1", 0.2, sampleAt)},
			want:    80,
		},
		{
			name: "request percent scales the estimate",
			args: func(a *config.LoadAwareArgs) {
				a.Estimation.RequestPercent = ptr.To[int64](50)
				a.ScoringStrategy.Resources[1].Weight = 0
			},
			pods: []*v1.Pod{testPod("new", "4", "")}, bound: map[string]time.Time{"new": after},
			samples: []utilization.Sample{cpuSample("n1", 0.2, sampleAt)},
			want:    100 - 20 - 20 - 5,
		},
		{
			name: "weights",
			args: func(a *config.LoadAwareArgs) {
				a.ScoringStrategy.Resources[0].Weight = 3
				a.Estimation.Mode = config.EstimateNone
			},
			samples: []utilization.Sample{cpuSample("n1", 0.0, sampleAt), memSample("n1", 1, sampleAt)},
			want:    75,
		},
		{
			name: "target utilisation",
			args: func(a *config.LoadAwareArgs) {
				a.ScoringStrategy.Type = config.TargetUtilization
				a.Estimation.Mode = config.EstimateNone
			},
			samples: []utilization.Sample{cpuSample("n1", 0.6, sampleAt), memSample("n1", 0.8, sampleAt)},
			want:    (100 + 30) / 2,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newScorer(defaultArgs(t, tc.args))
			snap := utilization.NewSnapshot(t0, time.Minute, tc.samples...)
			ni := nodeInfo(node, tc.pods...)
			a := s.assess(s.estimation.podUsage(incoming), ni, snap, boundTimes(tc.bound))
			assert.Equal(t, "n1", a.Node)
			assert.Equal(t, tc.want, a.Score)
			if tc.cpu != nil {
				got := a.Readings[utilization.CPU]
				assert.InDelta(t, tc.cpu.Estimated, got.Estimated, 1e-9)
				got.Estimated = tc.cpu.Estimated
				assert.Equal(t, *tc.cpu, got)
			}
		})
	}
}

func TestPodUsage(t *testing.T) {
	always := v1.ContainerRestartPolicyAlways
	pod := &v1.Pod{Spec: v1.PodSpec{
		InitContainers: []v1.Container{
			{Name: "setup", Resources: v1.ResourceRequirements{Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse("8")}}},
			{Name: "sidecar", RestartPolicy: &always, Resources: v1.ResourceRequirements{Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse("100m"), v1.ResourceMemory: resource.MustParse("64Mi")}}},
		},
		Containers: []v1.Container{
			{Name: "app", Resources: v1.ResourceRequirements{
				Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse("500m"), v1.ResourceMemory: resource.MustParse("1Gi")},
				Limits:   v1.ResourceList{v1.ResourceCPU: resource.MustParse("2"), v1.ResourceMemory: resource.MustParse("2Gi")},
			}},
			{Name: "besteffort"},
		},
		Overhead: v1.ResourceList{v1.ResourceCPU: resource.MustParse("50m")},
	}}
	mi := int64(1024 * 1024)
	for _, tc := range []struct {
		name string
		e    estimation
		want usage
	}{
		{"none", estimation{mode: config.EstimateNone, requestPercent: 100}, usage{}},
		{"request: sidecar + app + defaults for best effort + overhead, not the run-once init",
			estimation{mode: config.EstimateRequest, requestPercent: 100},
			usage{milliCPU: 100 + 500 + 100 + 50, memory: 64*mi + 1024*mi + 200*mi}},
		{"request scaled, overhead not", estimation{mode: config.EstimateRequest, requestPercent: 200},
			usage{milliCPU: 2*(100+500+100) + 50, memory: 2 * (64*mi + 1024*mi + 200*mi)}},
		{"limit, falling back to the request without one",
			estimation{mode: config.EstimateLimit, requestPercent: 100},
			usage{milliCPU: 100 + 2000 + 100 + 50, memory: 64*mi + 2048*mi + 200*mi}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, tc.e.podUsage(pod))
		})
	}
}

func TestOverThreshold(t *testing.T) {
	thresholds := []config.ResourceThreshold{{Name: "cpu", Percent: 80}, {Name: "memory", Percent: 90}}
	snap := utilization.NewSnapshot(t0, time.Minute,
		cpuSample("hot", 0.85, t0), memSample("hot", 0.1, t0),
		cpuSample("memhot", 0.1, t0), memSample("memhot", 0.95, t0),
		cpuSample("edge", 0.8, t0),
		cpuSample("stale", 0.99, t0.Add(-time.Hour)))
	for node, want := range map[string]utilization.Resource{"hot": utilization.CPU, "memhot": utilization.Memory, "edge": "", "stale": "", "nodata": ""} {
		r, _, over := overThreshold(testNode(node, "1", "1Gi"), snap, thresholds)
		assert.Equal(t, want != "", over, node)
		assert.Equal(t, want, r, node)
	}
}

func TestIsCritical(t *testing.T) {
	for _, tc := range []struct {
		name     string
		priority *int32
		class    string
		want     bool
	}{
		{"no priority", nil, "", false},
		{"user priority", ptr.To[int32](1000000000), "high", false},
		{"just below system", ptr.To[int32](1999999999), "", false},
		{"system-cluster-critical value", ptr.To[int32](2000000000), "", true},
		{"system-node-critical value", ptr.To[int32](2000001000), "", true},
		{"system class name", nil, "system-node-critical", true},
	} {
		p := &v1.Pod{Spec: v1.PodSpec{Priority: tc.priority, PriorityClassName: tc.class}}
		assert.Equal(t, tc.want, isCritical(p), tc.name)
	}
}

func TestExplanation(t *testing.T) {
	cpu, mem := 0.312, 0.4
	assessments := map[string]*assessment{
		"n1": {Node: "n1", Score: 87, Readings: map[utilization.Resource]reading{
			utilization.CPU:    {Known: true, Measured: cpu, Source: "prometheus", PendingPods: 2},
			utilization.Memory: {Known: true, Measured: mem, Source: "metrics-server"},
		}},
		"n2": {Node: "n2", Score: 80, Readings: map[utilization.Resource]reading{utilization.CPU: {}}},
		"n0": {Node: "n0", Score: 80},
		"n3": {Node: "n3", Score: 10},
	}
	chosen, runnerUp, ok := chosenAndRunnerUp(assessments, "n1")
	require.True(t, ok)
	assert.Equal(t, "n0", runnerUp.Node, "ties go to the first name")
	b, err := json.Marshal(explain(chosen, runnerUp))
	require.NoError(t, err)
	assert.JSONEq(t, `{"node":"n1","score":87,"cpu":0.31,"mem":0.4,"src":"metrics-server+prometheus","est":2,
		"runnerUp":{"node":"n0","score":80,"src":"none"}}`, string(b))

	_, _, ok = chosenAndRunnerUp(assessments, "unscored")
	assert.False(t, ok)
	only, none, ok := chosenAndRunnerUp(map[string]*assessment{"n1": assessments["n1"]}, "n1")
	assert.True(t, ok)
	assert.Nil(t, none)
	assert.NotContains(t, mustJSON(t, explain(only, none)), "runnerUp")

	patch, err := annotationPatch(explain(only, nil))
	require.NoError(t, err)
	var decoded struct {
		Metadata struct {
			Annotations map[string]string `json:"annotations"`
		} `json:"metadata"`
	}
	require.NoError(t, json.Unmarshal(patch, &decoded))
	assert.Contains(t, decoded.Metadata.Annotations[ScoreAnnotation], `"node":"n1"`)
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}
