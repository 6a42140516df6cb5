package webhook

import (
	"maps"
	"slices"
	"strconv"
	"strings"

	"gomodules.xyz/jsonpatch/v2"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"

	"github.com/harbormaster-dev/harbormaster/pkg/mutation"
)

// podPatch builds the JSON patch for the only fields the mutation rules
// write: annotations, container and init container resources, pod-level
// resources, affinity and tolerations. Each changed field is replaced as a
// whole ("add" replaces an existing member), so no full-object encoding and
// diff is needed; that generic diff was three quarters of a request's
// cost. ok is false when the shape of the pod changed, and the caller then
// falls back to the generic diff.
func podPatch(original mutation.WritableFields, mutated *corev1.Pod) (ops []jsonpatch.Operation, ok bool) {
	if len(original.Containers) != len(mutated.Spec.Containers) || len(original.InitContainers) != len(mutated.Spec.InitContainers) {
		return nil, false
	}
	ops = annotationOps(original.Annotations, mutated.Annotations)
	for i := range original.InitContainers {
		if !resourcesEqual(original.InitContainers[i], mutated.Spec.InitContainers[i].Resources) {
			ops = append(ops, jsonpatch.NewOperation("add", "/spec/initContainers/"+strconv.Itoa(i)+"/resources", mutated.Spec.InitContainers[i].Resources))
		}
	}
	for i := range original.Containers {
		if !resourcesEqual(original.Containers[i], mutated.Spec.Containers[i].Resources) {
			ops = append(ops, jsonpatch.NewOperation("add", "/spec/containers/"+strconv.Itoa(i)+"/resources", mutated.Spec.Containers[i].Resources))
		}
	}
	podResourcesEqual := original.Resources == mutated.Spec.Resources ||
		(original.Resources != nil && mutated.Spec.Resources != nil && resourcesEqual(*original.Resources, *mutated.Spec.Resources))
	ops = appendFieldOp(ops, "/spec/resources", original.Resources == nil, mutated.Spec.Resources == nil, podResourcesEqual, mutated.Spec.Resources)
	ops = appendFieldOp(ops, "/spec/affinity", original.Affinity == nil, mutated.Spec.Affinity == nil,
		apiequality.Semantic.DeepEqual(original.Affinity, mutated.Spec.Affinity), mutated.Spec.Affinity)
	ops = appendFieldOp(ops, "/spec/tolerations", len(original.Tolerations) == 0, len(mutated.Spec.Tolerations) == 0,
		apiequality.Semantic.DeepEqual(original.Tolerations, mutated.Spec.Tolerations), mutated.Spec.Tolerations)
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
