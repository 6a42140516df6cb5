package policy

import (
	"context"
	"encoding/json"
	"io/fs"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/stretchr/testify/require"

	"github.com/harbormaster-dev/harbormaster/policies"
)

// libQuery prepares query against the embedded policies, tests excluded,
// so that it can read lib.rego's helpers.
func libQuery(tb testing.TB, query string) rego.PreparedEvalQuery {
	tb.Helper()
	opts := []func(*rego.Rego){rego.Query(query), rego.SetRegoVersion(ast.RegoV1)}
	err := fs.WalkDir(policies.FS, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".rego") || strings.HasSuffix(path, testSuffix) {
			return err
		}
		data, err := fs.ReadFile(policies.FS, path)
		if err != nil {
			return err
		}
		opts = append(opts, rego.Module(path, string(data)))
		return nil
	})
	require.NoError(tb, err)
	pq, err := rego.New(opts...).PrepareForEval(context.Background())
	require.NoError(tb, err)
	return pq
}

// evalTerm evaluates pq, whose query binds x, on input; nil when undefined.
func evalTerm(tb testing.TB, pq rego.PreparedEvalQuery, input ast.Value) *ast.Term {
	tb.Helper()
	rs, err := pq.Eval(context.Background(), rego.EvalParsedInput(input))
	require.NoError(tb, err)
	if len(rs) == 0 {
		return nil
	}
	v, err := ast.InterfaceToValue(rs[0].Bindings["x"])
	require.NoError(tb, err)
	return ast.NewTerm(v)
}

// asJSON is v as the Go values a result set holds (sets become sorted
// arrays), for comparing with evalTerm's results.
func asJSON(tb testing.TB, v ast.Value) ast.Value {
	tb.Helper()
	x, err := ast.JSON(v)
	require.NoError(tb, err)
	out, err := ast.InterfaceToValue(x)
	require.NoError(tb, err)
	return out
}

// factsTestObjects are reviewed objects of every kind the facts cover, with
// the odd shapes a hand-written request may have.
func factsTestObjects(tb testing.TB) map[string]struct {
	group, kind string
	object      string
} {
	tb.Helper()
	pod, err := json.Marshal(mutatedPod(tb, scaledConfig(10), benchPod()))
	require.NoError(tb, err)
	template := `{"metadata": {"labels": {"app": "web"}}, "spec": {
		"initContainers": [{"name": "setup", "image": "busybox"}, {"name": "sidecar", "image": "Registry.Example.com/x:1", "restartPolicy": "Always"}],
		"containers": [{"name": "web", "image": "registry.example.com:5000/team-a/web@sha256:0123"}, {"image": 7}, null, "odd", {"name": 3}],
		"ephemeralContainers": [{"name": "debug", "image": "localhost/debug:dev"}]}}`
	type obj = struct {
		group, kind string
		object      string
	}
	return map[string]obj{
		"pod":                     {"", "Pod", string(pod)},
		"pod with odd containers": {"", "Pod", `{"kind": "Pod", "spec": ` + strings.TrimSuffix(strings.SplitN(template, `"spec": `, 2)[1], "}") + `}`},
		"pod without spec":        {"", "Pod", `{"kind": "Pod", "metadata": {}}`},
		"pod with odd limits": {"", "Pod", `{"spec": {
			"initContainers": [{"name": "i", "resources": {"limits": {"cpu": "2", "memory": 1048576}}}, {"name": "s", "resources": null}],
			"containers": [
				{"name": "a", "resources": {"limits": {"cpu": "500m", "memory": "1Gi"}}},
				{"name": "b", "resources": {"limits": {"cpu": "1", "memory": "64Mi"}, "requests": {"cpu": "1m"}}},
				{"name": "c", "resources": {"limits": {"cpu": null, "memory": true}}},
				{"name": "d", "resources": {"limits": []}},
				{"name": "e", "resources": {"limits": {"cpu": 0.25, "memory": "512Ki"}}}],
			"ephemeralContainers": [{"name": "x", "resources": {"limits": {"cpu": "1m"}}}]}}`},
		"pod with an unparsable limit": {"", "Pod", `{"spec": {"containers": [
			{"name": "a", "resources": {"limits": {"cpu": "lots", "memory": "1Gi"}}},
			{"name": "b", "resources": {"limits": {"cpu": "1", "memory": "2Gi"}}}]}}`},
		"pod with null lists":         {"", "Pod", `{"spec": {"containers": null, "initContainers": {}, "ephemeralContainers": []}}`},
		"null object":                 {"", "Pod", `null`},
		"deployment":                  {"apps", "Deployment", `{"spec": {"replicas": 2, "template": ` + template + `}}`},
		"replicaset":                  {"apps", "ReplicaSet", `{"spec": {"template": ` + template + `}}`},
		"statefulset":                 {"apps", "StatefulSet", `{"spec": {"template": ` + template + `}}`},
		"daemonset":                   {"apps", "DaemonSet", `{"spec": {"template": ` + template + `}}`},
		"job":                         {"batch", "Job", `{"spec": {"template": ` + template + `}}`},
		"cronjob":                     {"batch", "CronJob", `{"spec": {"jobTemplate": {"spec": {"template": ` + template + `}}}}`},
		"deployment without template": {"apps", "Deployment", `{"spec": {"template": null}}`},
		"cronjob with odd template":   {"batch", "CronJob", `{"spec": {"jobTemplate": []}}`},
	}
}

// The facts the engine derives agree with what lib.rego computes without
// them: its container entries and normalized images. Any change to those
// helpers must be mirrored in facts.go.
func TestFactsAgreeWithPolicies(t *testing.T) {
	entries := libQuery(t, "x := data.harbormaster.lib.container_entries")
	images := libQuery(t, `x := {img: data.harbormaster.lib.normalize_image(img) |
		some e in data.harbormaster.lib.container_entries
		img := e.container.image
		is_string(img)
	}`)
	// unset_limits and least_limits as HM-RS-001 and HM-RS-004 read limits:
	// least only when every string or number limit parses.
	limits := libQuery(t, `
		limited := [e | some e in data.harbormaster.lib.container_entries; e.kind != "ephemeralContainers"]
		unset := {r: count([1 | some e in limited; object.get(e.container, ["resources", "limits", r], null) == null]) |
			some r in ["cpu", "memory"]
		}
		least := {r: min(quantities) |
			some r in ["cpu", "memory"]
			raws := [raw |
				some e in limited
				raw := object.get(e.container, ["resources", "limits", r], null)
				type_name(raw) in {"string", "number"}
			]
			quantities := [data.harbormaster.lib.quantity(raw) | some raw in raws]
			count(quantities) == count(raws)
			count(raws) > 0
		}
		x := {"unset_limits": unset, "least_limits": least}`)
	used := libQuery(t, "x := data.harbormaster.lib.containers")
	taken := libQuery(t, "x := data.harbormaster.lib.facts")
	for name, tt := range factsTestObjects(t) {
		t.Run(name, func(t *testing.T) {
			object, err := jsonValue([]byte(tt.object))
			require.NoError(t, err)
			input := ast.NewObject(ast.Item(ast.StringTerm("request"), ast.ObjectTerm(
				ast.Item(ast.StringTerm("kind"), ast.ObjectTerm(
					ast.Item(ast.StringTerm("group"), ast.StringTerm(tt.group)),
					ast.Item(ast.StringTerm("kind"), ast.StringTerm(tt.kind)),
				)),
				ast.Item(ast.StringTerm("object"), ast.NewTerm(object)),
			)))
			facts := requestFacts(tt.group, tt.kind, object, newSharedKeys())
			require.NotNil(t, facts)

			wantEntries := evalTerm(t, entries, input)
			require.NotNil(t, wantEntries)
			require.Zero(t, wantEntries.Value.Compare(asJSON(t, facts.Get(ast.StringTerm("containers")).Value)),
				"facts %v\nlib.rego %v", facts.Get(ast.StringTerm("containers")), wantEntries)
			wantImages := evalTerm(t, images, input)
			require.Zero(t, wantImages.Value.Compare(asJSON(t, facts.Get(ast.StringTerm("images")).Value)),
				"facts %v\nlib.rego %v", facts.Get(ast.StringTerm("images")), wantImages)

			wantLimits := evalTerm(t, limits, input)
			for _, k := range []string{"unset_limits", "least_limits"} {
				want, got := wantLimits.Get(ast.StringTerm(k)), facts.Get(ast.StringTerm(k))
				require.Zero(t, want.Value.Compare(asJSON(t, got.Value)), "%s: facts %v\nlib.rego %v", k, got, want)
			}

			// With the facts, the policies take them (and still give the
			// same containers).
			withFacts := input.Copy()
			withFacts.Insert(ast.StringTerm("facts"), facts)
			require.NotNil(t, evalTerm(t, taken, withFacts))
			require.Zero(t, wantEntries.Value.Compare(evalTerm(t, used, withFacts).Value))
		})
	}
	t.Run("unreviewed kinds get no facts", func(t *testing.T) {
		require.Nil(t, requestFacts("", "ConfigMap", ast.NewObject(), nil))
		require.Nil(t, requestFacts("example.com", "Deployment", ast.NewObject(), nil))
	})
}

// The policies ignore facts that were not derived from input.request.object
// (a rule evaluating with another object) or along another template path.
func TestFactsOnlyForTheirObject(t *testing.T) {
	facts := libQuery(t, "x := data.harbormaster.lib.facts")
	containers := libQuery(t, "x := count(data.harbormaster.lib.containers)")
	input := func(kind, object string, factsKind string, factsObject string) ast.Value {
		obj, err := jsonValue([]byte(object))
		require.NoError(t, err)
		fobj := obj
		if factsObject != object {
			fobj, err = jsonValue([]byte(factsObject))
			require.NoError(t, err)
		}
		return ast.NewObject(
			ast.Item(ast.StringTerm("request"), ast.ObjectTerm(
				ast.Item(ast.StringTerm("kind"), ast.ObjectTerm(ast.Item(ast.StringTerm("group"), ast.StringTerm("apps")), ast.Item(ast.StringTerm("kind"), ast.StringTerm(kind)))),
				ast.Item(ast.StringTerm("object"), ast.NewTerm(obj)),
			)),
			ast.Item(ast.StringTerm("facts"), requestFacts("apps", factsKind, fobj, nil)),
		)
	}
	one := `{"spec": {"template": {"spec": {"containers": [{"name": "a"}]}}}}`
	two := `{"spec": {"template": {"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}}}`
	require.NotNil(t, evalTerm(t, facts, input("Deployment", one, "Deployment", one)))
	// An equal object decoded separately: the facts hold for it too.
	require.NotNil(t, evalTerm(t, facts, input("Deployment", one, "Deployment", strings.ReplaceAll(one, " ", ""))))
	require.Nil(t, evalTerm(t, facts, input("Deployment", two, "Deployment", one)))
	require.Equal(t, ast.IntNumberTerm(2), evalTerm(t, containers, input("Deployment", two, "Deployment", one)))
}

func TestNormalizeImageAgreesWithPolicies(t *testing.T) {
	pq := libQuery(t, "x := data.harbormaster.lib.normalize_image(input)")
	for _, image := range normalizeImageCases {
		want := evalTerm(t, pq, ast.String(image))
		require.NotNil(t, want, "%q", image)
		require.Equal(t, ast.String(normalizeImage(image)), want.Value, "%q", image)
	}
}

func FuzzNormalizeImage(f *testing.F) {
	for _, image := range normalizeImageCases {
		f.Add(image)
	}
	pq := libQuery(f, "x := data.harbormaster.lib.normalize_image(input)")
	f.Fuzz(func(t *testing.T, image string) {
		// Inputs reach the policies as JSON strings: valid UTF-8.
		raw, err := json.Marshal(image)
		require.NoError(t, err)
		var s string
		require.NoError(t, json.Unmarshal(raw, &s))
		want := evalTerm(t, pq, ast.String(s))
		require.NotNil(t, want, "%q", s)
		require.Equal(t, ast.String(normalizeImage(s)), want.Value, "%q", s)
	})
}

var normalizeImageCases = []string{
	"", "nginx", "nginx:1.25", "library/nginx", "index.docker.io/library/nginx:1.25", "docker.io/nginx",
	"team-a/app", "team-a/app:1", "registry.example.com:5000/team-a/app", "registry.example.com:5000/team-a/app:1.0",
	"localhost:5000/app", "localhost/app:dev", "localhost", "localhost:5000", "nginx@sha256:0123abcd",
	"registry.example.com:5000/a/b:1.0@sha256:0123abcd", "quay.io/org/app:v1", "ghcr.io/org/team/app",
	"Registry.Example.com/team-a/web", "ÄBC/x", "ǅx/y", "a/b:c:d", "a/b@c@d", "@sha256:x", "/nginx", "nginx/",
	"a:b/c", "a.b/c:d@e", ":tag", "a//b", "index.docker.io/x", "INDEX.docker.io/x", "docker.io/a/b/c:1",
}
