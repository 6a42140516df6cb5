package policy

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/stretchr/testify/require"
)

// jsonViaEncodingJSON is what jsonValue replaces: decoding with UseNumber,
// then converting.
func jsonViaEncodingJSON(tb testing.TB, data []byte) ast.Value {
	tb.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	require.NoError(tb, dec.Decode(&v))
	val, err := ast.InterfaceToValue(v)
	require.NoError(tb, err)
	return val
}

var jsonSamples = []string{
	`{}`, `[]`, `null`, `true`, `false`, `"top"`, `0`, `-0`, `12.5e-3`, `1E+2`, `-17`,
	`12345678901234567890123`, ` {"a" : [1, 2.50, {"b": null}] } `,
	`{"a": 1, "b": 2, "a": 3}`,
	`{"s": "tab\t quote\" slash\/ backslash\\ unicode\u00e9 emoji\ud83d\ude00 nul\u0000"}`,
	"{\"plain\": \"caf\u00e9 \u65e5\u672c\"}",
	"{\"bad\": \"\xff\xfe latin1 \xe9\"}",
	`{"k\u0065y": "v", "key": "w"}`,
	`[[], {}, [[{}]], {"a": {"b": {"c": []}}}]`,
}

func TestJSONValueMatchesEncodingJSON(t *testing.T) {
	pod, err := json.Marshal(mutatedPod(t, scaledConfig(10), benchPod()))
	require.NoError(t, err)
	for _, doc := range append(jsonSamples, string(pod)) {
		want := jsonViaEncodingJSON(t, []byte(doc))
		for _, keys := range []map[string]*ast.Term{nil, newSharedKeys()} {
			got, err := jsonValueKeys([]byte(doc), keys)
			require.NoError(t, err, doc)
			require.Zero(t, want.Compare(got), "%s\ngot  %v\nwant %v", doc, got, want)
		}
	}
}

func TestJSONValueRejects(t *testing.T) {
	for _, doc := range []string{
		``, ` `, `{`, `[`, `{"a"}`, `{"a":}`, `{"a":1,}`, `[1,]`, `[1 2]`, `{a:1}`, `01`, `[01]`, `1.`,
		`-`, `1e`, `1e+`, `.5`, `+1`, `tru`, `nul`, `"abc`, "\"a\x01\"", `"\x"`, `{"a":1}x`, `[] []`,
		strings.Repeat("[", maxJSONDepth+1) + strings.Repeat("]", maxJSONDepth+1),
	} {
		_, err := jsonValue([]byte(doc))
		require.Error(t, err, "%q", doc)
		require.False(t, json.Valid([]byte(doc)), "%q is valid JSON", doc)
	}
	deep := strings.Repeat("[", maxJSONDepth) + strings.Repeat("]", maxJSONDepth)
	_, err := jsonValue([]byte(deep))
	require.NoError(t, err, "encoding/json's depth limit is accepted")
}

// FuzzJSONValue: jsonValue accepts exactly valid JSON and then agrees with
// encoding/json.
func FuzzJSONValue(f *testing.F) {
	for _, s := range jsonSamples {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := jsonValue(data)
		if !json.Valid(data) {
			if err == nil {
				t.Fatalf("accepted invalid JSON %q", data)
			}
			return
		}
		if err != nil {
			t.Fatalf("rejected valid JSON %q: %v", data, err)
		}
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		var v any
		require.NoError(t, dec.Decode(&v))
		want, err := ast.InterfaceToValue(v)
		if err != nil {
			// OPA's conversion rejects what it cannot represent as a
			// float ("1E70000"); jsonValue keeps the literal, as
			// ast.Number does.
			return
		}
		if want.Compare(got) != 0 {
			t.Fatalf("%q: got %v, want %v", data, got, want)
		}
	})
}

// withoutManagedFields is what objectValue without managed fields must
// produce: the document decoded, metadata.managedFields of the top-level
// object deleted, converted. The error is OPA's conversion's (see
// FuzzJSONValue).
func withoutManagedFields(tb testing.TB, data []byte) (ast.Value, error) {
	tb.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	require.NoError(tb, dec.Decode(&v))
	if obj, ok := v.(map[string]any); ok {
		if meta, ok := obj["metadata"].(map[string]any); ok {
			delete(meta, managedFieldsKey)
		}
	}
	return ast.InterfaceToValue(v)
}

var managedFieldsSamples = []string{
	`{"metadata":{"name":"p","managedFields":[{"manager":"kubectl","fieldsV1":{"f:metadata":{"f:labels":{".":{},"f:app":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"app\"}":{".":{}}}}}}]},"spec":{}}`,
	`{"metadata":{"managedFields":null}}`,
	`{"metadata":{"managedFields":"a string with } ] , and \" \\ inside"}}`,
	`{"metadata":{"managedFields":12.5e3,"name":"after"}}`,
	`{"metadata":{"managedFields":[],"managedFields":[1]}}`,
	`{"metadata":{"name":"x","managedFields":{"a":[{},[]]}}}`,
	`{"metadata":{"managedFields":[{"k\"}":"]["}] , "labels":{"managedFields":"kept: not metadata's own"}}}`,
	`{"spec":{"template":{"metadata":{"managedFields":["kept: not the top-level object's"]}}},"metadata":{}}`,
	`{"managedFields":["kept: top level"],"metadata":"not an object"}`,
	`[{"metadata":{"managedFields":["kept: not an object at the top"]}}]`,
}

func TestObjectValueLeavesOutManagedFields(t *testing.T) {
	pod, err := json.Marshal(mutatedPod(t, scaledConfig(10), benchPod()))
	require.NoError(t, err)
	for _, doc := range append(append(managedFieldsSamples, jsonSamples...), string(pod)) {
		want, err := withoutManagedFields(t, []byte(doc))
		require.NoError(t, err, doc)
		got, err := objectValue([]byte(doc), newSharedKeys(), false)
		require.NoError(t, err, doc)
		require.Zero(t, want.Compare(got), "%s\ngot  %v\nwant %v", doc, got, want)
		kept, err := objectValue([]byte(doc), newSharedKeys(), true)
		require.NoError(t, err, doc)
		require.Zero(t, jsonViaEncodingJSON(t, []byte(doc)).Compare(kept), doc)
	}
	for _, doc := range []string{`{"metadata":{"managedFields":[{"a":1}`, `{"metadata":{"managedFields":"abc`, `{"metadata":{"managedFields":[[]}`} {
		_, err := objectValue([]byte(doc), nil, false)
		require.Error(t, err, doc)
	}
}

// FuzzObjectValue: on valid JSON, leaving managed fields out is deleting
// them from the decoded document.
func FuzzObjectValue(f *testing.F) {
	for _, s := range append(managedFieldsSamples, jsonSamples...) {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if !json.Valid(data) {
			return
		}
		got, err := objectValue(data, nil, false)
		if err != nil {
			t.Fatalf("rejected valid JSON %q: %v", data, err)
		}
		want, err := withoutManagedFields(t, data)
		if err != nil {
			return // see FuzzJSONValue
		}
		if want.Compare(got) != 0 {
			t.Fatalf("%q: got %v, want %v", data, got, want)
		}
	})
}
