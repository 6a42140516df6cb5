package policy

import (
	"context"
	"errors"
	"os"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/harbormaster-dev/harbormaster/pkg/config"
)

type violationSummary struct {
	ID          string
	Enforcement config.Enforcement
}

func TestEvaluate(t *testing.T) {
	engine := NewEngine(loadDir(t, "testdata/bundle", LoadOptions{RunTests: true}), EngineOptions{})

	withOverride := func(id string, e config.Enforcement) *config.Config {
		c := testConfig()
		c.Policy.Enforcement = map[string]config.Enforcement{id: e}
		return c
	}
	gpus := func(n string) func(*corev1.Pod) {
		return func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources.Limits["nvidia.com/gpu"] = resource.MustParse(n)
		}
	}

	tests := []struct {
		name       string
		mutate     func(*corev1.Pod)
		nsLabels   map[string]string
		namespace  string
		cfg        *config.Config
		wantResult Result
		want       []violationSummary
		wantTenant string
	}{
		{
			name:       "compliant pod",
			wantResult: ResultAllow,
			wantTenant: "team-a",
		},
		{
			name:       "pinned node is denied",
			mutate:     func(p *corev1.Pod) { p.Spec.NodeName = "node-1" },
			wantResult: ResultDeny,
			want:       []violationSummary{{"HM-HG-001", config.EnforcementDeny}},
			wantTenant: "team-a",
		},
		{
			name:   "privileged group may pin a node",
			mutate: func(p *corev1.Pod) { p.Spec.NodeName = "node-1" },
			cfg: func() *config.Config {
				c := testConfig()
				c.Privileged.Groups = []string{"system:serviceaccounts:kube-system"}
				return c
			}(),
			wantResult: ResultAllow,
			wantTenant: "team-a",
		},
		{
			name:       "host group of another tenant is denied",
			mutate:     func(p *corev1.Pod) { p.Labels[config.LabelHostGroup] = "gpu" },
			wantResult: ResultDeny,
			want:       []violationSummary{{"HM-HG-002", config.EnforcementDeny}},
			wantTenant: "team-a",
		},
		{
			name:       "unknown tenant is denied",
			nsLabels:   map[string]string{config.LabelTenant: "ghost"},
			wantResult: ResultDeny,
			want:       []violationSummary{{"HM-TEN-001", config.EnforcementDeny}},
			wantTenant: "ghost",
		},
		{
			name:       "too many GPUs is denied, missing model selector warns",
			mutate:     gpus("4"),
			wantResult: ResultDeny,
			want:       []violationSummary{{"HM-GPU-001", config.EnforcementDeny}, {"HM-GPU-002", config.EnforcementWarn}},
			wantTenant: "team-a",
		},
		{
			name:       "latest tag only warns",
			mutate:     func(p *corev1.Pod) { p.Spec.Containers[0].Image = "registry.example.com/team-a/web:latest" },
			wantResult: ResultWarn,
			want:       []violationSummary{{"HM-REG-002", config.EnforcementWarn}},
			wantTenant: "team-a",
		},
		{
			name:       "foreign registry is a dry run",
			mutate:     func(p *corev1.Pod) { p.Spec.Containers[1].Image = "docker.io/library/nginx:1.27" },
			wantResult: ResultDryRun,
			want:       []violationSummary{{"HM-REG-001", config.EnforcementDryRun}},
			wantTenant: "team-a",
		},
		{
			name:       "config escalates a dry run to deny",
			mutate:     func(p *corev1.Pod) { p.Spec.Containers[1].Image = "docker.io/library/nginx:1.27" },
			cfg:        withOverride("HM-REG-001", config.EnforcementDeny),
			wantResult: ResultDeny,
			want:       []violationSummary{{"HM-REG-001", config.EnforcementDeny}},
			wantTenant: "team-a",
		},
		{
			name:       "config relaxes a deny to warn",
			mutate:     func(p *corev1.Pod) { p.Spec.NodeName = "node-1" },
			cfg:        withOverride("HM-HG-001", config.EnforcementWarn),
			wantResult: ResultWarn,
			want:       []violationSummary{{"HM-HG-001", config.EnforcementWarn}},
			wantTenant: "team-a",
		},
		{
			name:       "exempt namespace is not judged",
			mutate:     func(p *corev1.Pod) { p.Spec.NodeName = "node-1"; p.Namespace = "monitoring" },
			namespace:  "monitoring",
			wantResult: ResultAllow,
			wantTenant: "team-a",
		},
		{
			name:       "namespace without tenant is not judged",
			mutate:     func(p *corev1.Pod) { p.Spec.NodeName = "node-1" },
			nsLabels:   map[string]string{},
			wantResult: ResultAllow,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := realisticPod()
			if tt.mutate != nil {
				tt.mutate(pod)
			}
			in := tenantInput(t, pod, tt.cfg)
			if in.Config == nil {
				in.Config = testConfig()
			}
			if tt.nsLabels != nil {
				in.Namespace.Labels = tt.nsLabels
			}
			if tt.namespace != "" {
				in.Namespace.Name = tt.namespace
			}

			d, err := engine.Evaluate(context.Background(), in)
			require.NoError(t, err)

			var got []violationSummary
			for _, v := range d.Violations {
				require.NotEmpty(t, v.Msg)
				require.NotEmpty(t, v.Title, "catalog data is attached")
				got = append(got, violationSummary{v.ID, v.Enforcement})
			}
			require.Equal(t, tt.want, got)
			require.Equal(t, tt.wantResult, d.Result())
			require.Equal(t, tt.wantResult != ResultDeny, d.Allowed)
			require.Equal(t, tt.wantTenant, d.Tenant)
			require.Equal(t, engine.Bundle().Revision(), d.BundleRevision)
			require.Positive(t, d.Latency)
		})
	}
}

func TestDecisionHelpers(t *testing.T) {
	d := Decision{Violations: []Violation{
		{ID: "HM-A-001", Msg: "a", Enforcement: config.EnforcementDeny},
		{ID: "HM-B-001", Msg: "b1", Enforcement: config.EnforcementDeny},
		{ID: "HM-B-001", Msg: "b2", Enforcement: config.EnforcementWarn},
		{ID: "HM-C-001", Msg: "c", Enforcement: config.EnforcementDryRun},
		{Msg: "anonymous", Enforcement: config.EnforcementDryRun},
	}}
	require.Equal(t, "[HM-A-001] a; [HM-B-001] b1", d.DenialMessage())
	require.Equal(t, []string{"[HM-B-001] b2"}, d.AdmissionWarnings())
	require.Len(t, d.DryRuns(), 2)
	require.Equal(t, []string{"HM-A-001", "HM-B-001", "HM-C-001"}, d.RuleIDs())
	require.Equal(t, "anonymous", d.Messages()[4])
	require.Equal(t, ResultDeny, d.Result())
	require.Equal(t, ResultAllow, Decision{}.Result())
}

// A violation the catalog does not know keeps its set's enforcement, and a
// bare string is read as the message.
func TestEvaluateUncataloguedViolations(t *testing.T) {
	b, err := loadMap(t, map[string]string{"a.rego": module("harbormaster.a", okCustom, `deny contains v if {
	input.namespace.name == "x"
	v := {"id": "HM-X-001", "msg": "known"}
}

# METADATA
# title: computed id
# custom:
#   id: HM-X-002
#   enforcement: warn
warn contains v if {
	input.namespace.name == "x"
	v := concat("", ["bare ", "string"])
}
`)})
	require.NoError(t, err)
	d, err := NewEngine(b, EngineOptions{}).Evaluate(context.Background(), Input{
		Request: podRequest(t, realisticPod()), Namespace: Namespace{Name: "x"},
	})
	require.NoError(t, err)
	require.Equal(t, []Violation{
		{ID: "HM-X-001", Msg: "known", Enforcement: config.EnforcementDeny, Title: "T"},
		{Msg: "bare string", Enforcement: config.EnforcementWarn},
	}, d.Violations)
}

func TestEvaluateErrors(t *testing.T) {
	conflict, err := loadMap(t, map[string]string{"a.rego": module("harbormaster.a", okCustom, `deny contains v if {
	pick
	v := {"id": "HM-X-001", "msg": "m"}
}

pick := 1 if input.namespace.name == "boom"

pick := 2 if input.namespace.name == "boom"
`)})
	require.NoError(t, err)

	slow, err := loadMap(t, map[string]string{"a.rego": module("harbormaster.a", okCustom, `deny contains v if {
	input.namespace.name == "slow"
	some i in numbers.range(1, 100000)
	some j in numbers.range(1, 100000)
	i * j == -1
	v := {"id": "HM-X-001", "msg": "m"}
}
`)})
	require.NoError(t, err)

	badQuantity, err := loadMap(t, map[string]string{"a.rego": module("harbormaster.a", okCustom, `deny contains v if {
	units.parse(input.namespace.name) > 1
	v := {"id": "HM-X-001", "msg": "m"}
}
`)})
	require.NoError(t, err)

	tests := []struct {
		name      string
		bundle    *Bundle
		opts      EngineOptions
		namespace string
		nilReq    bool
		wantErr   string
		wantIs    error
	}{
		{name: "no bundle", wantErr: "no policy bundle loaded", wantIs: ErrNoBundle},
		{name: "nil request", bundle: conflict, nilReq: true, wantErr: "request is nil"},
		{name: "runtime conflict", bundle: conflict, namespace: "boom", wantErr: "eval_conflict_error"},
		{name: "timeout", bundle: slow, opts: EngineOptions{Timeout: 20 * time.Millisecond}, namespace: "slow", wantErr: "deadline exceeded", wantIs: context.DeadlineExceeded},
		{name: "builtin error, strict", bundle: badQuantity, opts: EngineOptions{StrictBuiltinErrors: true}, namespace: "not-a-quantity", wantErr: "units.parse"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := Input{Request: podRequest(t, realisticPod()), Namespace: Namespace{Name: tt.namespace}}
			if tt.nilReq {
				in.Request = nil
			}
			start := time.Now()
			d, err := NewEngine(tt.bundle, tt.opts).Evaluate(context.Background(), in)
			require.ErrorContains(t, err, tt.wantErr)
			if tt.wantIs != nil {
				require.ErrorIs(t, err, tt.wantIs)
			}
			require.Less(t, time.Since(start), 5*time.Second)
			require.False(t, d.Allowed, "an error never allows")
			if tt.bundle != nil {
				require.Equal(t, tt.bundle.Revision(), d.BundleRevision, "the decision log still names the bundle")
			}
		})
	}

	// The caller's cancellation stops a running evaluation too, not only the
	// engine's timeout.
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)
	start := time.Now()
	_, err = NewEngine(slow, EngineOptions{Timeout: 10 * time.Second}).Evaluate(ctx, Input{Request: podRequest(t, realisticPod()), Namespace: Namespace{Name: "slow"}})
	require.ErrorIs(t, err, context.Canceled)
	require.Less(t, time.Since(start), 5*time.Second)

	// Without strict mode the failing expression is undefined: no violation.
	d, err := NewEngine(badQuantity, EngineOptions{}).Evaluate(context.Background(), Input{
		Request: podRequest(t, realisticPod()), Namespace: Namespace{Name: "not-a-quantity"},
	})
	require.NoError(t, err)
	require.True(t, d.Allowed)
}

func TestSafeEvalRecoversPanic(t *testing.T) {
	rs, err := safeEval(func() (rego.ResultSet, error) { panic("boom") })
	require.Nil(t, rs)
	require.EqualError(t, err, "policy evaluation panicked: boom")

	_, err = safeEval(func() (rego.ResultSet, error) { return nil, errors.New("plain") })
	require.EqualError(t, err, "plain")
}

func TestEngineSwapUnderLoad(t *testing.T) {
	full := loadDir(t, "testdata/bundle", LoadOptions{})
	empty := loadDir(t, "testdata/empty", LoadOptions{})
	engine := NewEngine(full, EngineOptions{})

	pod := realisticPod()
	pod.Spec.NodeName = "node-1"
	cfgs := []*config.Config{testConfig(), testConfig()}

	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 50 {
				in := tenantInput(t, pod, cfgs[(w+i)%2])
				d, err := engine.Evaluate(context.Background(), in)
				if err != nil {
					t.Error(err)
					return
				}
				// Each decision is wholly from one bundle.
				switch d.BundleRevision {
				case full.Revision():
					if d.Allowed {
						t.Error("full bundle allowed a pinned pod")
					}
				case empty.Revision():
					if !d.Allowed {
						t.Error("empty bundle denied")
					}
				default:
					t.Errorf("unknown revision %s", d.BundleRevision)
				}
			}
		})
	}
	for i := range 20 {
		if i%2 == 0 {
			engine.Swap(empty)
		} else {
			engine.Swap(full)
		}
		time.Sleep(time.Millisecond)
	}
	wg.Wait()
	require.Same(t, full, engine.Swap(empty))
}

func TestEngineReload(t *testing.T) {
	full := loadDir(t, "testdata/bundle", LoadOptions{})
	engine := NewEngine(full, EngineOptions{})

	broken := fstest.MapFS{
		"a.rego":      {Data: []byte(module("harbormaster.a", okCustom, okDeny))},
		"a_test.rego": {Data: []byte("package harbormaster.a_test\n\ntest_fails if false\n")},
	}
	_, err := engine.Reload(context.Background(), broken, LoadOptions{RunTests: true})
	require.ErrorContains(t, err, "test_fails")
	require.Same(t, full, engine.Bundle(), "a rejected bundle never serves")

	b, err := engine.Reload(context.Background(), os.DirFS("testdata/empty"), LoadOptions{RunTests: true})
	require.NoError(t, err)
	require.Same(t, b, engine.Bundle())
}
