package policy

import (
	"strconv"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
)

// input.facts: what the policies would otherwise derive from the reviewed
// object on every request by iterating its containers, computed here in a
// few microseconds instead of a few hundred Rego expressions. Every fact
// has a Rego fallback in lib.rego, which computes the same when the field
// is absent (tests, inputs replayed with opa eval), and
// TestFactsAgreeWithPolicies checks that both agree. The facts are
// documented in policies/README.md.

// containerKinds are lib.rego's container_kinds, in its order.
var containerKinds = [...]string{"containers", "initContainers", "ephemeralContainers"}

// podTemplatePath is where lib.rego's reviewed_kinds finds the pod template
// of an object of the given group and kind. ok is false for kinds the
// policies do not review, which get no facts. The policies use the facts
// only when this path equals their own (input.facts.template), so a kind
// they review differently falls back to their own computation.
func podTemplatePath(group, kind string) (path []string, ok bool) {
	switch {
	case group == "" && kind == "Pod":
		return []string{}, true
	case group == "apps" && (kind == "Deployment" || kind == "ReplicaSet" || kind == "StatefulSet" || kind == "DaemonSet"),
		group == "batch" && kind == "Job":
		return []string{"spec", "template"}, true
	case group == "batch" && kind == "CronJob":
		return []string{"spec", "jobTemplate", "spec", "template"}, true
	}
	return nil, false
}

// requestFacts returns input.facts for obj, the reviewed object of a
// request for group/kind, or nil for kinds the policies do not review:
//
//	object:     obj itself (the same term): the policies use the facts only
//	            while input.request.object is this object
//	template:   the pod template path the facts were derived with
//	containers: lib.containers, every container entry of the pod spec
//	images:     {image: lib.normalize_image(image)} for their string images
//
// Container objects are obj's own terms, shared, not copied.
func requestFacts(group, kind string, obj ast.Value, keys map[string]*ast.Term) *ast.Term {
	path, ok := podTemplatePath(group, kind)
	if !ok {
		return nil
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
	for _, kind := range containerKinds {
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
			if image := container.Get(key("image")); image != nil {
				if s, ok := image.Value.(ast.String); ok && images.Get(image) == nil {
					images.Insert(image, ast.StringTerm(normalizeImage(string(s))))
				}
			}
		}
	}
	return ast.ObjectTerm(
		ast.Item(ast.InternedTerm("object"), ast.NewTerm(obj)),
		ast.Item(ast.InternedTerm("template"), stringsTerm(path)),
		ast.Item(ast.InternedTerm("containers"), ast.SetTerm(entries...)),
		ast.Item(ast.InternedTerm("images"), ast.NewTerm(images)),
	)
}

// asObject is lib.rego's as_object: non-objects (null, absent) read as {}.
func asObject(v ast.Value) ast.Object {
	if o, ok := v.(ast.Object); ok {
		return o
	}
	return ast.NewObject()
}

// valueAt is o[key], nil when absent.
func valueAt(o ast.Object, key string) ast.Value {
	if t := o.Get(ast.StringTerm(key)); t != nil {
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
