package policy

import (
	"slices"
	"strconv"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/topdown"
	admissionv1 "k8s.io/api/admission/v1"

	"github.com/harbormaster-dev/harbormaster/pkg/config"
)

// input.facts: what the policies would otherwise derive on every request
// from the request's scope (kind, operation, tenant, configuration) and by
// iterating the reviewed object's containers, computed here in a few
// microseconds instead of a few hundred Rego expressions. Every fact has a
// Rego fallback in lib.rego, which computes the same when the field is
// absent (tests, inputs replayed with opa eval), and
// TestFactsAgreeWithPolicies and TestScopeFactsAgreeWithPolicies check
// that both agree. The facts are documented in policies/README.md.

// containerKinds are lib.rego's container_kinds, in its order.
func containerKinds() [3]string {
	return [...]string{"containers", "initContainers", "ephemeralContainers"}
}

// reviewedKind is one entry of lib.rego's reviewed_kinds: a kind the
// policies review, and the path of the pod template inside its objects.
type reviewedKind struct {
	group, kind string
	template    []string
}

func reviewedKinds() []reviewedKind {
	spec := []string{"spec", "template"}
	return []reviewedKind{
		{"", "Pod", []string{}},
		{"apps", "Deployment", spec},
		{"apps", "ReplicaSet", spec},
		{"apps", "StatefulSet", spec},
		{"apps", "DaemonSet", spec},
		{"batch", "Job", spec},
		{"batch", "CronJob", []string{"spec", "jobTemplate", "spec", "template"}},
	}
}

// podTemplatePath is where lib.rego's reviewed_kinds finds the pod template
// of an object of the given group and kind. ok is false for kinds the
// policies do not review, which get no facts.
func podTemplatePath(group, kind string) (path []string, ok bool) {
	for _, k := range reviewedKinds() {
		if k.group == group && k.kind == kind {
			return k.template, true
		}
	}
	return nil, false
}

// libScopeQuery reads the definitions of lib.rego the facts mirror; a
// bundle whose helper library defines them otherwise gets no facts
// (Bundle.inputOptions).
const libScopeQuery = "x := [data.harbormaster.lib.reviewed_kinds, data.harbormaster.lib.pod_subresources, data.harbormaster.lib.container_kinds]"

// libScopeValue is what libScopeQuery gives for the definitions facts.go
// mirrors, as the Go values of a result set.
func libScopeValue() any {
	kinds := map[string]any{}
	for _, k := range reviewedKinds() {
		template := make([]any, len(k.template))
		for i, s := range k.template {
			template[i] = s
		}
		kinds[k.kind] = map[string]any{"group": k.group, "template": template}
	}
	var subresources, containers []any
	for _, s := range podSubresources() {
		subresources = append(subresources, s)
	}
	for _, s := range containerKinds() {
		containers = append(containers, s)
	}
	// Sets come back as arrays in OPA's order, which sorts strings.
	slices.SortFunc(subresources, func(a, b any) int { return strings.Compare(a.(string), b.(string)) })
	return []any{kinds, subresources, containers}
}

// requestFacts returns the object facts of input.facts for obj, the
// reviewed object of a request for group/kind, or nil for kinds the
// policies do not review:
//
//	kind_info:  lib.kind_info, {"group": group, "template": path}
//	containers: lib.containers, every container entry of the pod spec
//	images:     {image: lib.normalize_image(image)} for their string images
//	unset_limits: {"cpu": n, "memory": n}: how many containers and init
//	            containers set no such limit (HM-RS-001 checks those)
//	least_limits: {"cpu": q, "memory": q}: their smallest such limit, as
//	            lib.quantity parses it, when one sets it and every one set
//	            parses (HM-RS-004 checks limits below a floor)
//
// and the pod labels scopeFacts reads. Container objects are obj's own
// terms, shared, not copied. Document.value adds the scope facts and the
// terms the facts were derived from (see scopeFacts).
func requestFacts(group, kind string, obj ast.Value, keys map[string]*ast.Term) ([][2]*ast.Term, ast.Object) {
	path, ok := podTemplatePath(group, kind)
	if !ok {
		return nil, nil
	}
	// lib.pod_template and lib.pod_spec: a missing or non-object step reads
	// as {}.
	template := asObject(obj)
	for _, step := range path {
		template = asObject(valueAt(template, step))
	}
	spec := asObject(valueAt(template, "spec"))
	prefix := strings.Join(append(path[:len(path):len(path)], "spec"), ".")

	key := func(k string) *ast.Term {
		if t, ok := keys[k]; ok {
			return t
		}
		return ast.StringTerm(k)
	}
	var entries []*ast.Term
	images := ast.NewObject()
	var limits limitFacts
	for _, kind := range containerKinds() {
		list, ok := valueAt(spec, kind).(*ast.Array)
		if !ok {
			continue
		}
		kindTerm := key(kind)
		for i := range list.Len() {
			container, ok := list.Elem(i).Value.(ast.Object)
			if !ok {
				container = ast.NewObject()
			}
			name := container.Get(key("name"))
			if name == nil {
				name = ast.InternedTerm("")
			}
			entries = append(entries, ast.ObjectTerm(
				ast.Item(key("kind"), kindTerm),
				ast.Item(key("index"), ast.InternedTerm(i)),
				ast.Item(key("name"), name),
				ast.Item(key("container"), ast.NewTerm(container)),
				ast.Item(key("field"), ast.StringTerm(prefix+"."+kind+"["+strconv.Itoa(i)+"]")),
			))
			if kind != "ephemeralContainers" {
				limits.add(container, key)
			}
			if image := container.Get(key("image")); image != nil {
				if s, ok := image.Value.(ast.String); ok && images.Get(image) == nil {
					images.Insert(image, ast.StringTerm(normalizeImage(string(s))))
				}
			}
		}
	}
	// lib.pod_labels.
	labels := asObject(valueAt(asObject(valueAt(template, "metadata")), "labels"))
	return [][2]*ast.Term{
		ast.Item(ast.InternedTerm("kind_info"), ast.ObjectTerm(
			ast.Item(ast.InternedTerm("group"), ast.StringTerm(group)),
			ast.Item(ast.InternedTerm("template"), stringsTerm(path)),
		)),
		ast.Item(ast.InternedTerm("containers"), ast.SetTerm(entries...)),
		ast.Item(ast.InternedTerm("images"), ast.NewTerm(images)),
		ast.Item(ast.InternedTerm("unset_limits"), limits.unsetTerm()),
		ast.Item(ast.InternedTerm("least_limits"), limits.leastTerm()),
	}, labels
}

// podSubresources are lib.rego's pod_subresources: the Pod subresources
// whose requests the policies review.
func podSubresources() [3]string { return [...]string{"", "resize", "ephemeralcontainers"} }

// scopeFacts are the facts of the request's scope, which every rule
// reads first: what lib.rego's helpers of the same names compute from the
// request, the tenant and the configuration.
//
//	reviewable:          lib.reviewable (false where it is undefined)
//	tenant_review:       lib.tenant_review (likewise)
//	allowed_host_groups: lib.allowed_host_groups
//	owned_pools:         lib.owned_pools, for a pod labelled podLabels
//
// A request of an unreviewed kind has no facts at all.
func scopeFacts(d Document, idx *ConfigIndex, podLabels ast.Object) [][2]*ast.Term {
	req, cfg := d.Request, d.Config
	reviewable := false
	if op := req.Operation; (op == admissionv1.Create || op == admissionv1.Update) && !d.ExemptNamespace {
		if req.Kind.Group == "" && req.Kind.Kind == "Pod" {
			subresources := podSubresources()
			reviewable = slices.Contains(subresources[:], req.SubResource)
		} else {
			reviewable = req.SubResource == ""
		}
	}
	allowed := []*ast.Term{}
	owned := []*ast.Term{}
	if t := d.Tenant; t != nil {
		for _, g := range t.HostGroups {
			if _, ok := cfg.HostGroups[g]; ok {
				allowed = append(allowed, ast.StringTerm(g))
			}
		}
		appLabel := cfg.DedicatedAppLabel
		if appLabel == "" {
			appLabel = config.DefaultDedicatedAppLabel
		}
		podApp := podLabels.Get(ast.StringTerm(appLabel))
		for _, name := range idx.PoolsByTenant[t.Name] {
			app := cfg.DedicatedPools[name].App
			if app == "" || (podApp != nil && podApp.Value.Compare(ast.String(app)) == 0) {
				owned = append(owned, ast.StringTerm(name))
			}
		}
	}
	return [][2]*ast.Term{
		ast.Item(ast.InternedTerm("reviewable"), ast.InternedTerm(reviewable)),
		ast.Item(ast.InternedTerm("tenant_review"), ast.InternedTerm(reviewable && d.Tenant != nil)),
		ast.Item(ast.InternedTerm("allowed_host_groups"), ast.SetTerm(allowed...)),
		ast.Item(ast.InternedTerm("owned_pools"), ast.SetTerm(owned...)),
	}
}

// limitResources are the limits HM-RS-001 and HM-RS-004 look at.
func limitResources() [numLimits]string { return [numLimits]string{"cpu", "memory"} }

const numLimits = 2

// limitFacts accumulates unset_limits and least_limits over the containers
// and init containers (lib.rego's limited_kinds).
type limitFacts struct {
	unset [numLimits]int
	least [numLimits]ast.Value
	// unparsed: a string limit units.parse rejects; no least for that
	// resource, so the policies parse it (and report the error) themselves.
	unparsed [numLimits]bool
	// parsed remembers the request's few distinct limit strings: its
	// containers usually repeat them.
	parsed []parsedQuantity
}

type parsedQuantity struct {
	raw ast.String
	q   ast.Value
	ok  bool
}

func (l *limitFacts) parse(raw ast.String) (ast.Value, bool) {
	for _, p := range l.parsed {
		if p.raw == raw {
			return p.q, p.ok
		}
	}
	q, ok := parseQuantity(raw)
	l.parsed = append(l.parsed, parsedQuantity{raw, q, ok})
	return q, ok
}

func (l *limitFacts) add(container ast.Object, key func(string) *ast.Term) {
	// object.get(container, ["resources", "limits", resource], null).
	res, _ := get(container, key("resources")).(ast.Object)
	var lim ast.Object
	if res != nil {
		lim, _ = get(res, key("limits")).(ast.Object)
	}
	for i, r := range limitResources() {
		var raw ast.Value
		if lim != nil {
			raw = get(lim, key(r))
		}
		var q ast.Value
		switch v := raw.(type) {
		case nil, ast.Null:
			l.unset[i]++
			continue
		case ast.Number:
			q = v
		case ast.String:
			var ok bool
			if q, ok = l.parse(v); !ok {
				l.unparsed[i] = true
				continue
			}
		default:
			// lib.quantity is undefined for it: it is below no floor.
			continue
		}
		if l.least[i] == nil || ast.Compare(q, l.least[i]) < 0 {
			l.least[i] = q
		}
	}
}

func (l *limitFacts) unsetTerm() *ast.Term {
	items := make([][2]*ast.Term, numLimits)
	for i, r := range limitResources() {
		items[i] = ast.Item(ast.StringTerm(r), ast.InternedTerm(l.unset[i]))
	}
	return ast.ObjectTerm(items...)
}

func (l *limitFacts) leastTerm() *ast.Term {
	items := make([][2]*ast.Term, 0, numLimits)
	for i, r := range limitResources() {
		if l.least[i] != nil && !l.unparsed[i] {
			items = append(items, ast.Item(ast.StringTerm(r), ast.NewTerm(l.least[i])))
		}
	}
	return ast.ObjectTerm(items...)
}

// parseQuantity is units.parse(s), OPA's own builtin, so that the facts
// hold exactly the numbers lib.quantity computes.
func parseQuantity(s ast.String) (ast.Value, bool) {
	var out ast.Value
	err := topdown.GetBuiltin(ast.UnitsParse.Name)(topdown.BuiltinContext{}, []*ast.Term{ast.NewTerm(s)}, func(t *ast.Term) error {
		out = t.Value
		return nil
	})
	return out, err == nil && out != nil
}

// asObject is lib.rego's as_object: non-objects (null, absent) read as {}.
func asObject(v ast.Value) ast.Object {
	if o, ok := v.(ast.Object); ok {
		return o
	}
	return ast.NewObject()
}

// valueAt is o[key], nil when absent.
func valueAt(o ast.Object, key string) ast.Value { return get(o, ast.StringTerm(key)) }

// get is o[key], nil when absent.
func get(o ast.Object, key *ast.Term) ast.Value {
	if t := o.Get(key); t != nil {
		return t.Value
	}
	return nil
}

// normalizeImage is lib.rego's normalize_image, step for step: "nginx" ->
// "docker.io/library/nginx:latest", "registry.example.com:5000/a/b@sha256:..."
// keeps its host, port and digest.
func normalizeImage(image string) string {
	// The digest starts at the first "@".
	name, digest := image, ""
	if i := strings.IndexByte(image, '@'); i >= 0 {
		name, digest = image[:i], image[i:]
	}
	// The first path component is a registry host only if it looks like
	// one (lib.rego's registry_host).
	domain, path := "docker.io", name
	if i := strings.IndexByte(name, '/'); i > 0 {
		if first := name[:i]; strings.ContainsAny(first, ".:") || first == "localhost" || strings.ToLower(first) != first {
			domain, path = first, name[i+1:]
			if domain == "index.docker.io" {
				domain = "docker.io"
			}
		}
	}
	// With the host removed, a colon can only start the tag.
	repo, tag := path, ""
	if i := strings.IndexByte(path, ':'); i >= 0 {
		repo, tag = path[:i], path[i:]
	}
	if domain == "docker.io" && !strings.Contains(repo, "/") {
		repo = "library/" + repo
	}
	if tag == "" && digest == "" {
		tag = ":latest"
	}
	return domain + "/" + repo + tag + digest
}
