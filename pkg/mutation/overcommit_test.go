package mutation

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/harbormaster-dev/harbormaster/pkg/config"
)

func requestsBySlot(p *corev1.Pod) map[string]corev1.ResourceList {
	out := map[string]corev1.ResourceList{}
	for _, s := range resourceSlots(&p.Spec) {
		out[s.key] = s.res.Requests
	}
	return out
}

func limitRange(typ corev1.LimitType, min, maxRatio corev1.ResourceList) corev1.LimitRange {
	return corev1.LimitRange{
		ObjectMeta: metav1.ObjectMeta{Name: "lr", Namespace: "apps"},
		Spec:       corev1.LimitRangeSpec{Limits: []corev1.LimitRangeItem{{Type: typ, Min: min, MaxLimitRequestRatio: maxRatio}}},
	}
}

func TestOvercommit(t *testing.T) {
	oc := parseConfig(t, overcommitYAML, hostGroupsYAML)
	sidecar := corev1.ContainerRestartPolicyAlways
	tests := []struct {
		name       string
		cfg        *config.Config
		pod        *corev1.Pod
		in         Input
		want       map[string]corev1.ResourceList // requests per slot
		annotation string                         // "" means none
	}{{
		name:       "limit-only container arrives with request=limit",
		pod:        newPod(withContainers(container("app", rl("cpu", "1", "memory", "1Gi"), rl("cpu", "1", "memory", "1Gi")))),
		want:       map[string]corev1.ResourceList{"containers/app": rl("cpu", "250m", "memory", "512Mi")},
		annotation: `{"ratios":{"cpu":4,"memory":2},"originals":{"containers/app":{"cpu":"1","memory":"1Gi"}}}`,
	}, {
		name:       "missing request counts as the limit",
		pod:        newPod(withContainers(container("app", nil, rl("cpu", "1", "memory", "1Gi")))),
		want:       map[string]corev1.ResourceList{"containers/app": rl("cpu", "250m", "memory", "512Mi")},
		annotation: `{"ratios":{"cpu":4,"memory":2},"originals":{"containers/app":{"cpu":"1","memory":"1Gi"}}}`,
	}, {
		name: "explicit lower request is kept",
		pod:  newPod(withContainers(container("app", rl("cpu", "100m", "memory", "256Mi"), rl("cpu", "1", "memory", "1Gi")))),
		want: map[string]corev1.ResourceList{"containers/app": rl("cpu", "100m", "memory", "256Mi")},
	}, {
		name:       "request between target and limit is lowered, one at target kept",
		pod:        newPod(withContainers(container("app", rl("cpu", "500m", "memory", "1Gi"), rl("cpu", "1", "memory", "2Gi")))),
		want:       map[string]corev1.ResourceList{"containers/app": rl("cpu", "250m", "memory", "1Gi")},
		annotation: `{"ratios":{"cpu":4,"memory":2},"originals":{"containers/app":{"cpu":"500m"}}}`,
	}, {
		name: "init containers, sidecars and pod-level resources",
		pod: newPod(func(p *corev1.Pod) {
			p.Spec.InitContainers = []corev1.Container{
				container("setup", rl("cpu", "2"), rl("cpu", "2")),
				container("proxy", rl("cpu", "400m", "memory", "128Mi"), rl("cpu", "400m", "memory", "128Mi")),
			}
			p.Spec.InitContainers[1].RestartPolicy = &sidecar
			p.Spec.Resources = &corev1.ResourceRequirements{Requests: rl("cpu", "4", "memory", "4Gi"), Limits: rl("cpu", "4", "memory", "4Gi")}
		}),
		want: map[string]corev1.ResourceList{
			"containers/app":       nil,
			"initContainers/setup": rl("cpu", "500m"),
			"initContainers/proxy": rl("cpu", "100m", "memory", "64Mi"),
			"pod":                  rl("cpu", "1", "memory", "2Gi"),
		},
		annotation: `{"ratios":{"cpu":4,"memory":2},"originals":{"initContainers/proxy":{"cpu":"400m","memory":"128Mi"},"initContainers/setup":{"cpu":"2"},"pod":{"cpu":"4","memory":"4Gi"}}}`,
	}, {
		name:       "GPUs are never touched",
		pod:        newPod(withContainers(container("app", rl("cpu", "1", "nvidia.com/gpu", "2"), rl("cpu", "1", "nvidia.com/gpu", "2")))),
		want:       map[string]corev1.ResourceList{"containers/app": rl("cpu", "250m", "nvidia.com/gpu", "2")},
		annotation: `{"ratios":{"cpu":4,"memory":2},"originals":{"containers/app":{"cpu":"1"}}}`,
	}, {
		name:       "floors raise tiny targets",
		pod:        newPod(withContainers(container("app", rl("cpu", "20m", "memory", "20Mi"), rl("cpu", "20m", "memory", "20Mi")))),
		want:       map[string]corev1.ResourceList{"containers/app": rl("cpu", "10m", "memory", "16Mi")},
		annotation: `{"ratios":{"cpu":4,"memory":2},"originals":{"containers/app":{"cpu":"20m","memory":"20Mi"}}}`,
	}, {
		name: "floors never exceed the limit",
		pod:  newPod(withContainers(container("app", rl("cpu", "5m", "memory", "16Mi"), rl("cpu", "5m", "memory", "16Mi")))),
		want: map[string]corev1.ResourceList{"containers/app": rl("cpu", "5m", "memory", "16Mi")},
	}, {
		name: "LimitRange min: Container type for containers, Pod type for pod-level",
		pod: newPod(withContainers(container("app", rl("cpu", "1", "memory", "1Gi"), rl("cpu", "1", "memory", "1Gi"))), func(p *corev1.Pod) {
			p.Spec.Resources = &corev1.ResourceRequirements{Requests: rl("cpu", "4"), Limits: rl("cpu", "4")}
		}),
		in: Input{LimitRanges: []corev1.LimitRange{
			limitRange(corev1.LimitTypeContainer, rl("cpu", "300m", "memory", "600Mi"), nil),
			limitRange(corev1.LimitTypePod, rl("cpu", "1500m"), nil),
		}},
		want: map[string]corev1.ResourceList{
			"containers/app": rl("cpu", "300m", "memory", "600Mi"),
			"pod":            rl("cpu", "1500m"),
		},
		annotation: `{"ratios":{"cpu":4,"memory":2},"originals":{"containers/app":{"cpu":"1","memory":"1Gi"},"pod":{"cpu":"4"}}}`,
	}, {
		name: "LimitRange maxLimitRequestRatio",
		pod:  newPod(withContainers(container("app", rl("cpu", "1", "memory", "1Gi"), rl("cpu", "1", "memory", "1Gi")))),
		in: Input{LimitRanges: []corev1.LimitRange{
			limitRange(corev1.LimitTypeContainer, nil, rl("cpu", "2", "memory", "1500m")),
		}},
		// 1Gi/1.5 = 715827882.67 bytes, rounded up.
		want:       map[string]corev1.ResourceList{"containers/app": rl("cpu", "500m", "memory", "715827883")},
		annotation: `{"ratios":{"cpu":4,"memory":2},"originals":{"containers/app":{"cpu":"1","memory":"1Gi"}}}`,
	}, {
		name: "guaranteed label opts out",
		pod:  newPod(withLabels(config.LabelQoS, config.QoSGuaranteed), withContainers(container("app", rl("cpu", "1"), rl("cpu", "1")))),
		want: map[string]corev1.ResourceList{"containers/app": rl("cpu", "1")},
	}, {
		name:       "namespace ratio wins",
		pod:        newPod(withContainers(container("app", rl("cpu", "1", "memory", "1Gi"), rl("cpu", "1", "memory", "1Gi")))),
		in:         Input{Namespace: "team-a-web"},
		want:       map[string]corev1.ResourceList{"containers/app": rl("cpu", "100m", "memory", "512Mi")},
		annotation: `{"ratios":{"cpu":10,"memory":2},"originals":{"containers/app":{"cpu":"1","memory":"1Gi"}}}`,
	}, {
		name:       "ratio of the single host group the pod is pinned to",
		pod:        newPod(withLabels(config.LabelHostGroup, "batch"), withContainers(container("app", rl("cpu", "1"), rl("cpu", "1")))),
		in:         tenantInput("apps", "team-a"),
		want:       map[string]corev1.ResourceList{"containers/app": rl("cpu", "125m")},
		annotation: `{"ratios":{"cpu":8,"memory":2},"originals":{"containers/app":{"cpu":"1"}}}`,
	}, {
		name:       "several host groups use the default ratio",
		pod:        newPod(withContainers(container("app", rl("cpu", "1"), rl("cpu", "1")))),
		in:         tenantInput("apps", "team-multi"),
		want:       map[string]corev1.ResourceList{"containers/app": rl("cpu", "250m")},
		annotation: `{"ratios":{"cpu":4,"memory":2},"originals":{"containers/app":{"cpu":"1"}}}`,
	}, {
		name: "ratios are decimals: 1100m/1.1 is 1000m, 1000 bytes/3 rounds up",
		cfg: parseConfig(t, `overcommit: {default: {cpu: 1.1, memory: 3}, minCPURequest: 0, minMemoryRequest: 0}
`),
		pod:        newPod(withContainers(container("app", rl("cpu", "1100m", "memory", "1000"), rl("cpu", "1100m", "memory", "1000")))),
		want:       map[string]corev1.ResourceList{"containers/app": rl("cpu", "1000m", "memory", "334")},
		annotation: `{"ratios":{"cpu":1.1,"memory":3},"originals":{"containers/app":{"cpu":"1100m","memory":"1k"}}}`,
	}, {
		name: "ratio 1 changes nothing",
		cfg:  config.Default(),
		pod:  newPod(withContainers(container("app", rl("cpu", "1", "memory", "1Gi"), rl("cpu", "1", "memory", "1Gi")))),
		want: map[string]corev1.ResourceList{"containers/app": rl("cpu", "1", "memory", "1Gi")},
	}, {
		name: "a recorded original below the request is stale and ignored",
		pod: newPod(withContainers(container("app", rl("cpu", "1"), rl("cpu", "1"))), func(p *corev1.Pod) {
			p.Annotations = map[string]string{config.AnnotationOvercommit: `{"ratios":{"cpu":4,"memory":2},"originals":{"containers/app":{"cpu":"100m"}}}`}
		}),
		want:       map[string]corev1.ResourceList{"containers/app": rl("cpu", "250m")},
		annotation: `{"ratios":{"cpu":4,"memory":2},"originals":{"containers/app":{"cpu":"1"}}}`,
	}, {
		name: "an annotation describing nothing is removed",
		pod: newPod(withContainers(container("app", rl("cpu", "100m"), rl("cpu", "1"))), func(p *corev1.Pod) {
			p.Annotations = map[string]string{config.AnnotationOvercommit: `{"ratios":{"cpu":4,"memory":2},"originals":{"containers/gone":{"cpu":"1"}}}`}
		}),
		want: map[string]corev1.ResourceList{"containers/app": rl("cpu", "100m")},
	}, {
		name: "reinvocation recomputes from the recorded original, never compounding",
		pod: newPod(withContainers(container("app", rl("cpu", "500m"), rl("cpu", "1"))), func(p *corev1.Pod) {
			// Left by a pass with ratio 2; this configuration says 4.
			p.Annotations = map[string]string{config.AnnotationOvercommit: `{"ratios":{"cpu":2,"memory":2},"originals":{"containers/app":{"cpu":"1"}}}`}
		}),
		want:       map[string]corev1.ResourceList{"containers/app": rl("cpu", "250m")},
		annotation: `{"ratios":{"cpu":4,"memory":2},"originals":{"containers/app":{"cpu":"1"}}}`,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			if cfg == nil {
				cfg = oc
			}
			if tt.in.Namespace == "" {
				tt.in.Namespace = "apps"
			}
			res := mutate(t, cfg, tt.pod, tt.in)
			got := requestsBySlot(res.Pod)
			for key, want := range tt.want {
				assertQuantities(t, want, got[key], key)
			}
			if tt.annotation == "" {
				assert.NotContains(t, res.Pod.Annotations, config.AnnotationOvercommit)
			} else {
				assert.Equal(t, tt.annotation, res.Pod.Annotations[config.AnnotationOvercommit])
			}
			changed := tt.annotation != "" || tt.pod.Annotations[config.AnnotationOvercommit] != ""
			assert.Equal(t, changed, contains(res.Applied, RuleOvercommit), "applied: %v", res.Applied)
		})
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func TestOvercommitOnlyLowersAndRespectsLimits(t *testing.T) {
	cfg := parseConfig(t, overcommitYAML, hostGroupsYAML)
	pod := newPod(withContainers(
		container("over", rl("cpu", "3", "memory", "3Gi"), rl("cpu", "1", "memory", "1Gi")), // invalid, request > limit
		container("none", nil, nil),
		container("req-only", rl("cpu", "1"), nil),
	))
	res := mutate(t, cfg, pod, Input{Namespace: "apps"})
	got := requestsBySlot(res.Pod)
	assertQuantities(t, rl("cpu", "250m", "memory", "512Mi"), got["containers/over"])
	assert.Nil(t, got["containers/none"])
	assertQuantities(t, rl("cpu", "1"), got["containers/req-only"], "no limit, nothing to derive a target from")
}

func TestMutatePodResize(t *testing.T) {
	cfg := parseConfig(t, overcommitYAML, hostGroupsYAML)
	in := Input{Namespace: "apps"}
	created := func(requests, limits corev1.ResourceList) *corev1.Pod {
		t.Helper()
		res := MutatePod(cfg, newPod(withContainers(container("app", requests, limits))), in)
		return res.Pod
	}
	resized := func(old *corev1.Pod, requests, limits corev1.ResourceList) *corev1.Pod {
		p := old.DeepCopy()
		p.Spec.Containers[0].Resources = corev1.ResourceRequirements{Requests: requests, Limits: limits}
		return p
	}
	limitOnly := created(rl("cpu", "1", "memory", "1Gi"), rl("cpu", "1", "memory", "1Gi")) // -> 250m, 512Mi
	explicit := created(rl("cpu", "800m"), rl("cpu", "1"))                                 // -> 250m, original 800m
	lowRequest := created(rl("cpu", "100m", "memory", "1Gi"), rl("cpu", "1", "memory", "1Gi"))

	tests := []struct {
		name    string
		cfg     *config.Config
		old     *corev1.Pod
		new     *corev1.Pod
		want    corev1.ResourceList
		applied bool
	}{
		{"limit raised, request unchanged: ratio kept", cfg, limitOnly,
			resized(limitOnly, rl("cpu", "250m", "memory", "512Mi"), rl("cpu", "2", "memory", "4Gi")), rl("cpu", "500m", "memory", "2Gi"), true},
		{"limit lowered", cfg, limitOnly,
			resized(limitOnly, rl("cpu", "250m", "memory", "512Mi"), rl("cpu", "400m", "memory", "1Gi")), rl("cpu", "100m", "memory", "512Mi"), true},
		{"recorded ratios win over the current configuration", parseConfig(t, "overcommit: {default: {cpu: 10}}\n"), limitOnly,
			resized(limitOnly, rl("cpu", "250m", "memory", "512Mi"), rl("cpu", "2", "memory", "1Gi")), rl("cpu", "500m", "memory", "512Mi"), true},
		{"request changed too: the client decides", cfg, limitOnly,
			resized(limitOnly, rl("cpu", "300m", "memory", "512Mi"), rl("cpu", "2", "memory", "1Gi")), rl("cpu", "300m", "memory", "512Mi"), false},
		{"explicit original stays the ceiling", cfg, explicit,
			resized(explicit, rl("cpu", "250m"), rl("cpu", "4")), rl("cpu", "800m"), true},
		{"explicit original, smaller limit", cfg, explicit,
			resized(explicit, rl("cpu", "250m"), rl("cpu", "2")), rl("cpu", "500m"), true},
		{"never-lowered request is never raised", cfg, lowRequest,
			resized(lowRequest, rl("cpu", "100m", "memory", "512Mi"), rl("cpu", "2", "memory", "1Gi")), rl("cpu", "100m", "memory", "512Mi"), false},
		{"no annotation: no-op", cfg, newPod(withContainers(container("app", rl("cpu", "1"), rl("cpu", "1")))),
			newPod(withContainers(container("app", rl("cpu", "1"), rl("cpu", "2")))), rl("cpu", "1"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := tt.new.DeepCopy()
			res := MutatePodResize(tt.cfg, tt.old, tt.new, in)
			require.Equal(t, before, tt.new, "the input pod must not be modified")
			assertQuantities(t, tt.want, res.Pod.Spec.Containers[0].Resources.Requests)
			assert.Equal(t, tt.applied, contains(res.Applied, RuleOvercommit))
			assert.Equal(t, tt.old.Annotations, res.Pod.Annotations, "annotations are left alone")
		})
	}

	t.Run("exempt", func(t *testing.T) {
		res := MutatePodResize(cfg, limitOnly, resized(limitOnly, rl("cpu", "250m"), rl("cpu", "2")), Input{Namespace: "kube-system"})
		assert.Equal(t, SkipExemptNamespace, res.Skipped)
		assertQuantities(t, rl("cpu", "250m"), res.Pod.Spec.Containers[0].Resources.Requests)
	})
}
