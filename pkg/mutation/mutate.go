package mutation

import (
	corev1 "k8s.io/api/core/v1"

	"github.com/harbormaster-dev/harbormaster/pkg/config"
)

// Rule names reported in Result.Applied.
const (
	RuleOvercommit    = "overcommit"
	RuleAntiAffinity  = "anti-affinity"
	RuleWorkloadClass = "workload-class"
	RuleHostGroup     = "host-group"
	RuleDedicated     = "dedicated"
)

// Reasons reported in Result.Skipped.
const (
	SkipExemptNamespace = "exempt-namespace"
	SkipExemptLabel     = "exempt-label"
)

// Input is what admission knows about the pod's surroundings: a snapshot,
// never a client.
type Input struct {
	Namespace       string
	NamespaceLabels map[string]string
	// OwnNamespace is the webhook's own namespace, always exempt.
	OwnNamespace string
	// LimitRanges of the pod's namespace.
	LimitRanges []corev1.LimitRange
}

// Result of mutating one pod.
type Result struct {
	// Pod is the mutated pod. It owns every field the rules may write
	// (WritesOnlyMutableFields) and shares the rest with the input, which
	// is never modified: treat it as read-only outside those fields.
	Pod *corev1.Pod
	// Applied names the rules that changed something, in rule order.
	Applied []string
	// Skipped is the reason the pod is exempt, empty otherwise.
	Skipped string
	// Warnings are returned to the client, e.g. a host group label the
	// tenant may not use.
	Warnings []string
}

// MutatePod applies every rule to a pod at CREATE. pod is not modified.
func MutatePod(cfg *config.Config, pod *corev1.Pod, in Input) Result {
	return mutatePod(orDefault(cfg), copyForMutation(pod), in)
}

// MutatePodOwned is MutatePod for a caller that owns pod and needs it no
// more as it was: the rules write into pod itself, and Result.Pod is pod.
// What they change inside a field they replace by a copy first
// (annotations, pod-level resources, affinity, tolerations, a container's
// resource lists), so a shallow snapshot of those fields taken before the
// call keeps the original values: the webhook patches from one. It saves
// copying the pod and its containers; FuzzMutatePod checks it agrees with
// MutatePod and leaves such a snapshot intact.
func MutatePodOwned(cfg *config.Config, pod *corev1.Pod, in Input) Result {
	detachWritable(pod)
	return mutatePod(orDefault(cfg), pod, in)
}

// mutatePod applies the rules to out, which the caller prepared for
// writing.
func mutatePod(cfg *config.Config, out *corev1.Pod, in Input) Result {
	res := Result{Pod: out}
	ns := namespaceOf(in, out)
	if res.Skipped = exemption(cfg, ns, in.OwnNamespace, out.Labels); res.Skipped != "" {
		return res
	}

	// Placement is decided first: the overcommit ratio depends on the host
	// group the pod is pinned to. Rules still report in rule order.
	placement := confine(cfg, &out.Spec, out.Labels, in.NamespaceLabels)
	res.Warnings = placement.warnings

	if out.Labels[config.LabelQoS] != config.QoSGuaranteed {
		cpu, memory := cfg.Ratios(ns, placement.hostGroup)
		if applyOvercommit(cfg, out, cpu, memory, in.LimitRanges) {
			res.Applied = append(res.Applied, RuleOvercommit)
		}
	}
	if cfg.AntiAffinity.IsEnabled() {
		identity, class := addAntiAffinity(cfg.AntiAffinity, &out.Spec, out.Labels)
		if identity {
			res.Applied = append(res.Applied, RuleAntiAffinity)
		}
		if class {
			res.Applied = append(res.Applied, RuleWorkloadClass)
		}
	}
	res.Applied = append(res.Applied, placement.applied...)
	return res
}

// MutatePodResize keeps an overcommitted pod's ratio across an in-place
// resize (UPDATE of pods/resize): a container whose cpu or memory limit
// changed while its request did not gets its request recomputed with the
// ratios recorded at creation. Annotations are left alone: the resize
// subresource ignores them.
func MutatePodResize(cfg *config.Config, oldPod, newPod *corev1.Pod, in Input) Result {
	cfg = orDefault(cfg)
	out := copyForMutation(newPod)
	res := Result{Pod: out}
	ns := namespaceOf(in, newPod)
	if res.Skipped = exemption(cfg, ns, in.OwnNamespace, newPod.Labels); res.Skipped != "" {
		return res
	}
	if out.Labels[config.LabelQoS] == config.QoSGuaranteed {
		return res
	}
	if resizeOvercommit(cfg, oldPod, out, in.LimitRanges) {
		res.Applied = append(res.Applied, RuleOvercommit)
	}
	return res
}

// MutatePodTemplate confines a DaemonSet's pod template (host groups and
// dedicated pools only), so the DaemonSet controller creates pods only on
// nodes where they may run. The pods themselves are mutated again at CREATE.
func MutatePodTemplate(cfg *config.Config, tmpl *corev1.PodTemplateSpec, in Input) (out *corev1.PodTemplateSpec, applied []string) {
	cfg = orDefault(cfg)
	out = tmpl.DeepCopy()
	ns := in.Namespace
	if ns == "" {
		ns = tmpl.Namespace
	}
	if exemption(cfg, ns, in.OwnNamespace, tmpl.Labels) != "" {
		return out, nil
	}
	return out, confine(cfg, &out.Spec, out.Labels, in.NamespaceLabels).applied
}

func orDefault(cfg *config.Config) *config.Config {
	if cfg == nil {
		return config.Default()
	}
	return cfg
}

// namespaceOf prefers the request's namespace: a pod's metadata.namespace
// may still be empty at admission.
func namespaceOf(in Input, pod *corev1.Pod) string {
	if in.Namespace != "" {
		return in.Namespace
	}
	return pod.Namespace
}

func exemption(cfg *config.Config, ns, ownNamespace string, labels map[string]string) string {
	switch {
	case cfg.IsExemptNamespace(ns, ownNamespace):
		return SkipExemptNamespace
	case labels[config.LabelExempt] == config.ExemptValue:
		return SkipExemptLabel
	}
	return ""
}
