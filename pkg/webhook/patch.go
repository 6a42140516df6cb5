package webhook

import (
	"encoding/json"
	"fmt"

	gojson "github.com/goccy/go-json"
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

// encodePatch encodes a JSON patch as RFC 6902 requires: "add" and
// "replace" always carry a value (null included), "remove" never does.
// jsonpatch.Operation's own MarshalJSON goes through encoding/json, which
// cost a tenth of an admission round trip.
func encodePatch(ops []jsonpatch.Operation) ([]byte, error) {
	type withValue struct {
		Op    string `json:"op"`
		Path  string `json:"path"`
		Value any    `json:"value"`
	}
	type withoutValue struct {
		Op   string `json:"op"`
		Path string `json:"path"`
	}
	out := make([]any, len(ops))
	for i, op := range ops {
		if op.Operation == "remove" {
			out[i] = withoutValue{Op: op.Operation, Path: op.Path}
		} else {
			out[i] = withValue{Op: op.Operation, Path: op.Path, Value: op.Value}
		}
	}
	return gojson.Marshal(out)
}
