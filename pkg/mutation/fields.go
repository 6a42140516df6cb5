package mutation

import (
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
)

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
