package webhook

import (
	"encoding/json"
	"fmt"

	"gomodules.xyz/jsonpatch/v2"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
)

// JSONPatch returns the JSON patch from original to mutated exactly as the
// mutating handlers answer the API server: the field-level pod patch when it
// applies, else the generic diff of both sides' typed encoding. An
// unchanged object yields nil. Tools that show what the webhook would do
// (the explain CLI) call it so that their patch is the webhook's patch.
func JSONPatch[T any](original, mutated *T) ([]jsonpatch.Operation, error) {
	if op, isPod := any(original).(*corev1.Pod); isPod {
		if ops, ok := podPatch(op, any(mutated).(*corev1.Pod)); ok {
			if len(ops) == 0 {
				return nil, nil
			}
			return ops, nil
		}
	}
	if apiequality.Semantic.DeepEqual(original, mutated) {
		return nil, nil
	}
	before, err := json.Marshal(original)
	if err != nil {
		return nil, err
	}
	after, err := json.Marshal(mutated)
	if err != nil {
		return nil, err
	}
	ops, err := jsonpatch.CreatePatch(before, after)
	if err != nil {
		return nil, fmt.Errorf("computing patch: %w", err)
	}
	if len(ops) == 0 {
		return nil, nil
	}
	return ops, nil
}
