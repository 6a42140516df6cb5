package mutation

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/harbormaster-dev/harbormaster/pkg/config"
)

// benchmarkPod is a realistic workload pod: two containers and an init
// container with limit-only resources, identity labels and a zone
// preference written by its owner.
func benchmarkPod() *corev1.Pod {
	limits := func(cpu, memory string) corev1.ResourceList { return rl("cpu", cpu, "memory", memory) }
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: "web-7d9f8-", Namespace: "team-a-web",
			Labels: map[string]string{"app.kubernetes.io/name": "web", "app.kubernetes.io/instance": "shop", "pod-template-hash": "7d9f8"},
		},
		Spec: corev1.PodSpec{
			InitContainers: []corev1.Container{container("migrate", limits("500m", "256Mi"), limits("500m", "256Mi"))},
			Containers: []corev1.Container{
				container("web", limits("2", "2Gi"), limits("2", "2Gi")),
				container("metrics", limits("100m", "64Mi"), limits("100m", "64Mi")),
			},
			Affinity: &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
				RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{
					term(req("topology.kubernetes.io/zone", corev1.NodeSelectorOpIn, "eu-1a", "eu-1b")),
				}},
			}},
		},
	}
}

func benchmarkConfig(b *testing.B) *config.Config {
	return parseConfig(b, overcommitYAML, hostGroupsYAML, poolsYAML)
}

// BenchmarkMutatePod: tenant with two host groups (no default), dedicated
// pools the pod does not own, anti-affinity and overcommit all apply.
func BenchmarkMutatePod(b *testing.B) {
	cfg := benchmarkConfig(b)
	pod := benchmarkPod()
	in := tenantInput("team-a-web", "team-multi")
	if res := MutatePod(cfg, pod, in); len(res.Applied) != 4 {
		b.Fatalf("benchmark pod should get four rules, got %v", res.Applied)
	}
	b.ReportAllocs()
	for b.Loop() {
		MutatePod(cfg, pod, in)
	}
}

// BenchmarkMutatePodNoop is the baseline: the same pod, exempt, costs one
// deep copy.
func BenchmarkMutatePodNoop(b *testing.B) {
	cfg := benchmarkConfig(b)
	pod := benchmarkPod()
	pod.Labels[config.LabelExempt] = config.ExemptValue
	in := tenantInput("team-a-web", "team-multi")
	b.ReportAllocs()
	for b.Loop() {
		MutatePod(cfg, pod, in)
	}
}
