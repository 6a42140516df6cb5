package mutation

import (
	"maps"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
)

// The rules read only the namespace, labels and annotations of a pod, the
// name and resources of its containers and init containers, and its
// pod-level resources, affinity, tolerations and topology spread
// constraints. The webhook decodes nothing else (webhook.admittedPod, held
// to it by webhook.TestDecodedFieldsSuffice): a rule that reads another
// field must be added there.

// WritesOnlyMutableFields reports whether mutated differs from original
// only in the fields the rules of this package may write: annotations, the
// resources of containers and init containers, pod-level resources, affinity
// and tolerations. It is the contract the webhook's field-level patch
// relies on; FuzzMutatePod checks every rule keeps it.
func WritesOnlyMutableFields(original, mutated *corev1.Pod) bool {
	if original.TypeMeta != mutated.TypeMeta || !apiequality.Semantic.DeepEqual(original.Status, mutated.Status) {
		return false
	}
	om, mm := original.ObjectMeta, mutated.ObjectMeta
	om.Annotations, mm.Annotations = nil, nil
	if !apiequality.Semantic.DeepEqual(om, mm) {
		return false
	}
	os, ms := original.Spec, mutated.Spec
	if len(os.Containers) != len(ms.Containers) || len(os.InitContainers) != len(ms.InitContainers) {
		return false
	}
	for _, pair := range [][2][]corev1.Container{{os.Containers, ms.Containers}, {os.InitContainers, ms.InitContainers}} {
		for i := range pair[0] {
			oc, mc := pair[0][i], pair[1][i]
			oc.Resources, mc.Resources = corev1.ResourceRequirements{}, corev1.ResourceRequirements{}
			if !apiequality.Semantic.DeepEqual(oc, mc) {
				return false
			}
		}
	}
	os.Containers, ms.Containers = nil, nil
	os.InitContainers, ms.InitContainers = nil, nil
	os.Resources, ms.Resources = nil, nil
	os.Affinity, ms.Affinity = nil, nil
	os.Tolerations, ms.Tolerations = nil, nil
	return apiequality.Semantic.DeepEqual(os, ms)
}

// WritableFields are the fields of a pod the rules may write, as the pod
// refers to them: its maps, pointers and slices themselves, not copies.
// Taken before MutatePodOwned they keep the original values, since the
// rules replace a field by a copy before changing anything inside it; the
// webhook's patch compares them with the result.
type WritableFields struct {
	Annotations                map[string]string
	Containers, InitContainers []corev1.ResourceRequirements
	Resources                  *corev1.ResourceRequirements
	Affinity                   *corev1.Affinity
	Tolerations                []corev1.Toleration
}

// WritableFieldsOf returns pod's writable fields.
func WritableFieldsOf(pod *corev1.Pod) WritableFields {
	return WritableFields{
		Annotations:    pod.Annotations,
		Containers:     containerResources(pod.Spec.Containers),
		InitContainers: containerResources(pod.Spec.InitContainers),
		Resources:      pod.Spec.Resources,
		Affinity:       pod.Spec.Affinity,
		Tolerations:    pod.Spec.Tolerations,
	}
}

func containerResources(cs []corev1.Container) []corev1.ResourceRequirements {
	if len(cs) == 0 {
		return nil
	}
	out := make([]corev1.ResourceRequirements, len(cs))
	for i := range cs {
		out[i] = cs[i].Resources
	}
	return out
}

// copyForMutation copies the fields the rules may write and shares the rest
// with pod: resource lists stay shared until overcommit writes a request
// (resourceSlot.setRequest). A full deep copy of the pod was a fifth of the
// webhook's cost per request; FuzzMutatePod checks that the input is never
// modified.
func copyForMutation(pod *corev1.Pod) *corev1.Pod {
	out := *pod
	out.Spec.Containers = copyContainers(pod.Spec.Containers)
	out.Spec.InitContainers = copyContainers(pod.Spec.InitContainers)
	detachWritable(&out)
	return &out
}

// detachWritable gives pod its own copies of the writable fields the rules
// change inside: annotations, pod-level resources, affinity and
// tolerations. Containers' resource lists are copied on first write
// instead (resourceSlot.setRequest), so whatever still refers to the
// originals (the input pod, a snapshot of the fields) keeps them.
func detachWritable(pod *corev1.Pod) {
	pod.Annotations = maps.Clone(pod.Annotations)
	if pod.Spec.Resources != nil {
		resources := *pod.Spec.Resources
		pod.Spec.Resources = &resources
	}
	pod.Spec.Affinity = pod.Spec.Affinity.DeepCopy()
	if pod.Spec.Tolerations != nil {
		tolerations := make([]corev1.Toleration, len(pod.Spec.Tolerations))
		for i := range pod.Spec.Tolerations {
			pod.Spec.Tolerations[i].DeepCopyInto(&tolerations[i])
		}
		pod.Spec.Tolerations = tolerations
	}
}

// copyContainers copies the slice, so a container's resources can be
// replaced; everything a container points to is shared.
func copyContainers(in []corev1.Container) []corev1.Container {
	if in == nil {
		return nil
	}
	return append([]corev1.Container(nil), in...)
}
