package webhook

import (
	"maps"
	"slices"
	"strconv"
	"strings"

	"gomodules.xyz/jsonpatch/v2"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
)

// podFields are the fields of a pod the mutation rules may write
// (mutation.WritesOnlyMutableFields, enforced by its fuzz test), as the
// patch compares them: the maps, pointers and slices of the pod
// themselves. The rules replace a field by a copy before changing anything
// inside it, so fields taken before mutation.MutatePodOwned keep the
// original values.
type podFields struct {
	annotations                map[string]string
	containers, initContainers []corev1.ResourceRequirements
	resources                  *corev1.ResourceRequirements
	affinity                   *corev1.Affinity
	tolerations                []corev1.Toleration
}

func podFieldsOf(p *corev1.Pod) podFields {
	return podFields{
		annotations:    p.Annotations,
		containers:     containerResources(p.Spec.Containers),
		initContainers: containerResources(p.Spec.InitContainers),
		resources:      p.Spec.Resources,
		affinity:       p.Spec.Affinity,
		tolerations:    p.Spec.Tolerations,
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

// podPatch builds the JSON patch for the only fields the mutation rules
// write: annotations, container and init container resources, pod-level
// resources, affinity and tolerations. Each changed field is replaced as a
// whole ("add" replaces an existing member), so no full-object encoding and
// diff is needed; that generic diff was three quarters of a request's
// cost. ok is false when the shape of the pod changed, and the caller then
// falls back to the generic diff.
func podPatch(original podFields, mutated *corev1.Pod) (ops []jsonpatch.Operation, ok bool) {
	if len(original.containers) != len(mutated.Spec.Containers) || len(original.initContainers) != len(mutated.Spec.InitContainers) {
		return nil, false
	}
	ops = annotationOps(original.annotations, mutated.Annotations)
	for i := range original.initContainers {
		if !resourcesEqual(original.initContainers[i], mutated.Spec.InitContainers[i].Resources) {
			ops = append(ops, jsonpatch.NewOperation("add", "/spec/initContainers/"+strconv.Itoa(i)+"/resources", mutated.Spec.InitContainers[i].Resources))
		}
	}
	for i := range original.containers {
		if !resourcesEqual(original.containers[i], mutated.Spec.Containers[i].Resources) {
			ops = append(ops, jsonpatch.NewOperation("add", "/spec/containers/"+strconv.Itoa(i)+"/resources", mutated.Spec.Containers[i].Resources))
		}
	}
	podResourcesEqual := original.resources == mutated.Spec.Resources ||
		(original.resources != nil && mutated.Spec.Resources != nil && resourcesEqual(*original.resources, *mutated.Spec.Resources))
	ops = appendFieldOp(ops, "/spec/resources", original.resources == nil, mutated.Spec.Resources == nil, podResourcesEqual, mutated.Spec.Resources)
	ops = appendFieldOp(ops, "/spec/affinity", original.affinity == nil, mutated.Spec.Affinity == nil,
		apiequality.Semantic.DeepEqual(original.affinity, mutated.Spec.Affinity), mutated.Spec.Affinity)
	ops = appendFieldOp(ops, "/spec/tolerations", len(original.tolerations) == 0, len(mutated.Spec.Tolerations) == 0,
		apiequality.Semantic.DeepEqual(original.tolerations, mutated.Spec.Tolerations), mutated.Spec.Tolerations)
	return ops, true
}

// resourcesEqual compares resource requirements by quantity value, without
// reflection.
func resourcesEqual(a, b corev1.ResourceRequirements) bool {
	return resourceListsEqual(a.Limits, b.Limits) && resourceListsEqual(a.Requests, b.Requests) &&
		apiequality.Semantic.DeepEqual(a.Claims, b.Claims)
}

func resourceListsEqual(a, b corev1.ResourceList) bool {
	if len(a) != len(b) {
		return false
	}
	for name, qa := range a {
		qb, ok := b[name]
		if !ok || qa.Cmp(qb) != 0 {
			return false
		}
	}
	return true
}

// appendFieldOp adds, replaces or removes one optional field.
func appendFieldOp(ops []jsonpatch.Operation, path string, wasEmpty, isEmpty, equal bool, value any) []jsonpatch.Operation {
	switch {
	case equal || (wasEmpty && isEmpty):
		return ops
	case isEmpty:
		return append(ops, jsonpatch.NewOperation("remove", path, nil))
	default:
		return append(ops, jsonpatch.NewOperation("add", path, value))
	}
}

// annotationOps patches annotations key by key, so annotations other
// webhooks or users set are never rewritten.
func annotationOps(before, after map[string]string) []jsonpatch.Operation {
	if maps.Equal(before, after) {
		return nil
	}
	if len(before) == 0 {
		// The member is omitted from the serialized object when empty.
		return []jsonpatch.Operation{jsonpatch.NewOperation("add", "/metadata/annotations", after)}
	}
	var ops []jsonpatch.Operation
	for _, k := range slices.Sorted(maps.Keys(after)) {
		if v, ok := before[k]; !ok || v != after[k] {
			ops = append(ops, jsonpatch.NewOperation("add", "/metadata/annotations/"+escapePointer(k), after[k]))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(before)) {
		if _, ok := after[k]; !ok {
			ops = append(ops, jsonpatch.NewOperation("remove", "/metadata/annotations/"+escapePointer(k), nil))
		}
	}
	return ops
}

// escapePointer escapes a JSON pointer token (RFC 6901).
func escapePointer(s string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(s)
}
