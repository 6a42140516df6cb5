package policy

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/stretchr/testify/require"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/harbormaster-dev/harbormaster/pkg/config"
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

// engineInput is the input the engine builds for a request reviewing
// object (raw JSON) of group/kind, with its facts, and the same input
// without them.
func engineInput(tb testing.TB, req *admissionv1.AdmissionRequest, ns Namespace, cfg *config.Config) (withFacts, withoutFacts ast.Object) {
	tb.Helper()
	terms, err := newConfigTerms(cfg)
	require.NoError(tb, err)
	doc, err := buildDocument(Input{Request: req, Namespace: ns, Config: cfg}, cfg, terms.indexDoc)
	require.NoError(tb, err)
	v, err := doc.value(terms, newSharedKeys(), inputOptions{facts: true})
	require.NoError(tb, err)
	withFacts = v.(ast.Object)
	withoutFacts = ast.NewObject()
	withFacts.Foreach(func(k, v *ast.Term) {
		if !k.Equal(ast.StringTerm("facts")) {
			withoutFacts.Insert(k, v)
		}
	})
	return withFacts, withoutFacts
}

func reviewRequest(group, kind, object string) *admissionv1.AdmissionRequest {
	return &admissionv1.AdmissionRequest{
		UID:       "facts",
		Kind:      metav1.GroupVersionKind{Group: group, Version: "v1", Kind: kind},
		Namespace: "team-a-dev",
		Operation: admissionv1.Create,
		Object:    runtime.RawExtension{Raw: []byte(object)},
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
			withFacts, input := engineInput(t, reviewRequest(tt.group, tt.kind, tt.object), Namespace{Labels: tenantLabels()}, scaledConfig(10))
			facts := withFacts.Get(ast.StringTerm("facts"))
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
			require.NotNil(t, evalTerm(t, taken, withFacts))
			require.Zero(t, wantEntries.Value.Compare(evalTerm(t, used, withFacts).Value))
		})
	}
	t.Run("unreviewed kinds get no facts", func(t *testing.T) {
		for _, kind := range []metav1.GroupVersionKind{{Kind: "ConfigMap"}, {Group: "example.com", Kind: "Deployment"}} {
			facts, _ := requestFacts(kind.Group, kind.Kind, ast.NewObject(), nil)
			require.Nil(t, facts)
			withFacts, _ := engineInput(t, reviewRequest(kind.Group, kind.Kind, `{}`), Namespace{Labels: tenantLabels()}, scaledConfig(10))
			require.Nil(t, withFacts.Get(ast.StringTerm("facts")))
		}
	})
}

// scopeHelpers are the helpers the scope facts stand for; where the
// boolean ones are false with the facts, they are undefined without them
// (both fail as conditions).
func scopeHelpers() []string {
	return []string{"kind_info", "reviewable", "tenant_review", "allowed_host_groups", "owned_pools", "pod_labels", "is_pod", "is_workload"}
}

// scopeConfig has what the scope facts depend on: groups a tenant lists
// but the config lacks, pools restricted to apps under a custom label, a
// pool of an unknown tenant.
func scopeConfig(appLabel string) *config.Config {
	cfg := scaledConfig(10)
	cfg.DedicatedAppLabel = appLabel
	team := cfg.Tenants["team-a"]
	team.HostGroups = append(team.HostGroups, "undefined-group", "general")
	cfg.Tenants["team-a"] = team
	cfg.Tenants["no-groups"] = config.Tenant{}
	cfg.DedicatedPools["web-only"] = config.DedicatedPool{Tenant: "team-a", App: "web"}
	cfg.DedicatedPools["db-only"] = config.DedicatedPool{Tenant: "team-a", App: "db"}
	cfg.DedicatedPools["ghost"] = config.DedicatedPool{Tenant: "ghost-tenant"}
	cfg.ExemptNamespaces = append(cfg.ExemptNamespaces, "team-a-exempt")
	return cfg
}

// The scope facts agree with lib.rego's helpers over requests of every
// operation, subresource, kind, tenant, namespace exemption and app label.
func TestScopeFactsAgreeWithPolicies(t *testing.T) {
	helpers := map[string]rego.PreparedEvalQuery{}
	for _, h := range scopeHelpers() {
		helpers[h] = libQuery(t, "x := data.harbormaster.lib."+h)
	}
	asBool := func(t *ast.Term) *ast.Term {
		if t == nil {
			return ast.BooleanTerm(false)
		}
		return t
	}
	objects := factsTestObjects(t)
	objects["pod labelled db"] = struct {
		group, kind string
		object      string
	}{"", "Pod", `{"metadata": {"labels": {"app.kubernetes.io/name": "db", "component": "web"}}, "spec": {}}`}
	objects["pod with odd labels"] = struct {
		group, kind string
		object      string
	}{"", "Pod", `{"metadata": {"labels": {"app.kubernetes.io/name": 7}}}`}
	// GPUs: on UPDATE, HM-RS-002 evaluates the old pod's count `with`
	// input.request.object as the old object, where the facts must not
	// be taken.
	objects["pod with GPUs"] = struct {
		group, kind string
		object      string
	}{"", "Pod", `{"metadata": {"annotations": {"harbormaster.io/gpu-milli": "1500"}}, "spec": {"containers": [{"name": "t", "image": "docker.io/library/x", "resources": {"limits": {"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": "2"}}}]}}`}
	// The old object of UPDATEs: fewer GPUs, another image and labels.
	oldObjects := map[string]string{
		"":      `{"metadata": {"labels": {"app.kubernetes.io/name": "web"}}, "spec": {"containers": [{"name": "t", "image": "nginx", "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}}`,
		"apps":  `{"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx"}]}}}}`,
		"batch": `{"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx"}]}}}}`,
	}
	namespaces := map[string]Namespace{
		"team-a":         {Name: "team-a-dev", Labels: tenantLabels()},
		"no tenant":      {Name: "plain"},
		"unknown tenant": {Name: "x", Labels: map[string]string{config.LabelTenant: "ghost-tenant"}},
		"no groups":      {Name: "y", Labels: map[string]string{config.LabelTenant: "no-groups"}},
		"exempt":         {Name: "team-a-exempt", Labels: tenantLabels()},
		"system":         {Name: "kube-system", Labels: tenantLabels()},
	}
	// The decisions too, once per request shape.
	bundle := loadEmbedded(t, nil)
	decide := func(t *testing.T, input ast.Value, cfg *config.Config) []Violation {
		rs, err := bundle.query.Eval(context.Background(), rego.EvalParsedInput(input))
		require.NoError(t, err)
		v, err := bundle.violations(rs, cfg.Policy.Enforcement)
		require.NoError(t, err)
		return v
	}
	cases, decided := 0, 0
	ids := map[string]bool{}
	for _, appLabel := range []string{"", "component"} {
		cfg := scopeConfig(appLabel)
		for name, obj := range objects {
			for nsName, ns := range namespaces {
				for _, op := range []admissionv1.Operation{admissionv1.Create, admissionv1.Update, admissionv1.Delete, admissionv1.Connect} {
					for _, sub := range []string{"", "resize", "ephemeralcontainers", "status", "scale"} {
						req := reviewRequest(obj.group, obj.kind, obj.object)
						req.Operation, req.SubResource = op, sub
						if op == admissionv1.Update {
							req.OldObject = runtime.RawExtension{Raw: []byte(oldObjects[obj.group])}
						}
						withFacts, withoutFacts := engineInput(t, req, ns, cfg)
						if withFacts.Get(ast.StringTerm("facts")) == nil {
							continue
						}
						for h, pq := range helpers {
							want, got := evalTerm(t, pq, withoutFacts), evalTerm(t, pq, withFacts)
							if h == "reviewable" || h == "tenant_review" {
								want, got = asBool(want), asBool(got)
							}
							msg := fmt.Sprintf("%s of %s in %s, %s %q, app label %q:\nfacts    %v\nlib.rego %v", h, name, nsName, op, sub, appLabel, got, want)
							require.Equal(t, want == nil, got == nil, msg)
							if want != nil {
								require.Zero(t, want.Value.Compare(got.Value), msg)
							}
						}
						cases++
						if appLabel == "" && (sub == "" || sub == "resize") {
							want := decide(t, withoutFacts, cfg)
							require.Equal(t, want, decide(t, withFacts, cfg), "%s in %s, %s %q", name, nsName, op, sub)
							decided++
							for _, v := range want {
								ids[v.ID+" "+string(op)] = true
							}
						}
					}
				}
			}
		}
	}
	t.Logf("%d requests, %d decisions", cases, decided)
	// The decisions compared include denials of every area, on UPDATE too
	// (HM-RS-002 there is the old pod's count, evaluated `with` it).
	for _, id := range []string{"HM-NS-001 CREATE", "HM-NS-002 CREATE", "HM-RS-001 CREATE", "HM-RS-002 CREATE", "HM-RS-002 UPDATE", "HM-RG-001 UPDATE", "HM-HG-004 CREATE"} {
		require.True(t, ids[id], "no decision with %s among %v", id, slices.Sorted(maps.Keys(ids)))
	}
}

// The policies ignore facts that were not derived from this very request,
// tenant and configuration (a rule evaluating with another object).
func TestFactsOnlyForTheirRequest(t *testing.T) {
	facts := libQuery(t, "x := data.harbormaster.lib.facts")
	containers := libQuery(t, "x := count(data.harbormaster.lib.containers)")
	one := `{"spec": {"template": {"spec": {"containers": [{"name": "a"}]}}}}`
	two := `{"spec": {"template": {"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}}}`
	ns, cfg := Namespace{Labels: tenantLabels()}, scaledConfig(10)
	withOne, _ := engineInput(t, reviewRequest("apps", "Deployment", one), ns, cfg)
	withTwo, _ := engineInput(t, reviewRequest("apps", "Deployment", two), ns, cfg)
	require.NotNil(t, evalTerm(t, facts, withOne))

	// Another request's facts (as a rule evaluating `with` another object
	// sees them), tenant, configuration or exemption: not taken.
	swapped := withTwo.Copy()
	swapped.Insert(ast.StringTerm("facts"), withOne.Get(ast.StringTerm("facts")))
	require.Nil(t, evalTerm(t, facts, swapped))
	require.Equal(t, ast.IntNumberTerm(2), evalTerm(t, containers, swapped))
	for key, other := range map[string]*ast.Term{
		"tenant":           ast.NullTerm(),
		"config":           ast.ObjectTerm(),
		"exempt_namespace": ast.BooleanTerm(true),
	} {
		changed := withOne.Copy()
		changed.Insert(ast.StringTerm(key), other)
		require.Nil(t, evalTerm(t, facts, changed), key)
	}
	// An equal request, tenant and configuration decoded separately: the
	// facts hold for them too.
	again, _ := engineInput(t, reviewRequest("apps", "Deployment", strings.ReplaceAll(one, " ", "")), ns, cfg)
	equal := again.Copy()
	equal.Insert(ast.StringTerm("facts"), withOne.Get(ast.StringTerm("facts")))
	require.NotNil(t, evalTerm(t, facts, equal))
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
