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

// withoutMembers is what objectValue leaving out omit's members must
// produce: the document decoded, those members deleted (arrays below the
// top crossed), converted. The error is OPA's conversion's (see
// FuzzJSONValue).
func withoutMembers(tb testing.TB, data []byte, omit *omissions) (ast.Value, error) {
	tb.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	require.NoError(tb, dec.Decode(&v))
	var del func(v any, o *omissions)
	del = func(v any, o *omissions) {
		if o == nil {
			return
		}
		switch x := v.(type) {
		case map[string]any:
			for k, member := range x {
				if c := o.members[k]; c != nil && c.omit {
					delete(x, k)
				} else {
					del(member, c)
				}
			}
		case []any:
			for _, e := range x {
				del(e, o)
			}
		}
	}
	if obj, ok := v.(map[string]any); ok {
		del(obj, omit)
	}
	return ast.InterfaceToValue(v)
}

// omitSamples exercise the omissions: skipped values of every shape,
// members of the same name elsewhere kept.
var omitSamples = []string{
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
	`{"spec":{"containers":[{"name":"a","env":[{"name":"X","value":"1"}],"image":"i","ports":[{"containerPort":80}]},"not an object",{"env":null}],"env":"kept: not a container's"}}`,
	`{"spec":{"initContainers":[[{"env":["nested arrays are crossed"],"command":["sh"]}]],"volumes":[{"name":"v","emptyDir":{}}]}}`,
	`{"spec":{"affinity":{"podAntiAffinity":{"x":[1]},"nodeAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[]},"preferredDuringSchedulingIgnoredDuringExecution":[{"weight":1}]}}},"status":{"phase":"Pending"}}`,
	`{"spec":{"template":{"spec":{"containers":[{"env":["kept: a template's"]}]}}}}`,
}

// omitTrees are the trees the tests leave out: every kind's, a Pod's.
func omitTrees() map[string]*omissions {
	pods, others, _ := inputOmissions(nil)
	return map[string]*omissions{"others": others, "pods": pods}
}

func TestObjectValueLeavesOutMembers(t *testing.T) {
	pod, err := json.Marshal(mutatedPod(t, scaledConfig(10), benchPod()))
	require.NoError(t, err)
	for name, tree := range omitTrees() {
		for _, doc := range append(append(omitSamples, jsonSamples...), string(pod)) {
			want, err := withoutMembers(t, []byte(doc), tree)
			require.NoError(t, err, doc)
			got, err := objectValue([]byte(doc), newSharedKeys(), tree)
			require.NoError(t, err, doc)
			require.Zero(t, want.Compare(got), "%s: %s\ngot  %v\nwant %v", name, doc, got, want)
			kept, err := objectValue([]byte(doc), newSharedKeys(), nil)
			require.NoError(t, err, doc)
			require.Zero(t, jsonViaEncodingJSON(t, []byte(doc)).Compare(kept), doc)
		}
		for _, doc := range []string{`{"metadata":{"managedFields":[{"a":1}`, `{"metadata":{"managedFields":"abc`, `{"metadata":{"managedFields":[[]}`, `{"spec":{"volumes":[{"a":"}]}}`} {
			_, err := objectValue([]byte(doc), nil, tree)
			require.Error(t, err, doc)
		}
	}
	// The benchmark pod loses most of its objects.
	got, err := objectValue(pod, nil, omitTrees()["pods"])
	require.NoError(t, err)
	spec := got.(ast.Object).Get(ast.StringTerm("spec")).Value.(ast.Object)
	require.Nil(t, spec.Get(ast.StringTerm("volumes")))
	web := spec.Get(ast.StringTerm("containers")).Value.(*ast.Array).Elem(0).Value.(ast.Object)
	require.Nil(t, web.Get(ast.StringTerm("env")))
	require.NotNil(t, web.Get(ast.StringTerm("resources")))
	require.NotNil(t, spec.Get(ast.StringTerm("tolerations")))
}

// FuzzObjectValue: on valid JSON, leaving members out is deleting them
// from the decoded document.
func FuzzObjectValue(f *testing.F) {
	for _, s := range append(omitSamples, jsonSamples...) {
		f.Add([]byte(s))
	}
	trees := omitTrees()
	f.Fuzz(func(t *testing.T, data []byte) {
		if !json.Valid(data) {
			return
		}
		for _, tree := range trees {
			got, err := objectValue(data, nil, tree)
			if err != nil {
				t.Fatalf("rejected valid JSON %q: %v", data, err)
			}
			want, err := withoutMembers(t, data, tree)
			if err != nil {
				return // see FuzzJSONValue
			}
			if want.Compare(got) != 0 {
				t.Fatalf("%q: got %v, want %v", data, got, want)
			}
		}
	})
}

// BenchmarkObjectValue converts the benchmark pod as the API server sends
// it (managed fields included) with the embedded bundle's omissions, most
// of which skipValue steps over.
func BenchmarkObjectValue(b *testing.B) {
	raw, err := json.Marshal(mutatedPod(b, scaledConfig(10), benchPod()))
	require.NoError(b, err)
	pods, _, _ := inputOmissions(nil)
	keys := newSharedKeys()
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := objectValue(raw, keys, pods); err != nil {
			b.Fatal(err)
		}
	}
}
