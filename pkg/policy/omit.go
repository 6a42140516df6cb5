package policy

import (
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
)

// The engine leaves members of the reviewed objects out of the input when
// no policy of the bundle names them, and converts them not at all: a pod
// as admission receives it is mostly fields no placement or tenancy rule
// reads (managed fields, volumes, env, probes, ...), and converting each of
// its objects to OPA's representation costs about 360 bytes, most of what
// an evaluation allocates outside OPA. policies/README.md states the
// contract; Bundle.OmittedMembers lists what a bundle's input leaves out.

// omittable is one member the engine may leave out: path from the object,
// arrays crossed (spec.containers.env is every container's env).
type omittable struct {
	// podOnly: only in Pods (request kind "Pod" of the core group). Other
	// kinds keep them: a workload's template is compared whole on UPDATE
	// (lib.new_pod_template), and a template change must not go unseen.
	podOnly bool
	path    []string
}

// omittableMembers are the members the engine may leave out, in the order
// Bundle.OmittedMembers lists them.
func omittableMembers() []omittable {
	out := []omittable{
		{path: []string{"metadata", managedFieldsKey}},
		{podOnly: true, path: []string{"status"}},
		{podOnly: true, path: []string{"spec", "volumes"}},
		{podOnly: true, path: []string{"spec", "affinity", "podAffinity"}},
		{podOnly: true, path: []string{"spec", "affinity", "podAntiAffinity"}},
		{podOnly: true, path: []string{"spec", "affinity", "nodeAffinity", "preferredDuringSchedulingIgnoredDuringExecution"}},
	}
	for _, kind := range containerKinds() {
		for _, member := range []string{
			"env", "envFrom", "ports", "volumeMounts", "volumeDevices",
			"livenessProbe", "readinessProbe", "startupProbe", "lifecycle",
			"command", "args",
		} {
			out = append(out, omittable{podOnly: true, path: []string{"spec", kind, member}})
		}
	}
	return out
}

// omissions is a tree of the members left out: the member a node stands
// for is skipped when omit is set, else its members are looked up below.
// A nil tree leaves nothing out.
type omissions struct {
	omit    bool
	members map[string]*omissions
}

// childOf is the node of the member whose name the parser read (see
// jsonParser.str); nil when nothing below it is left out. The lookup with
// string(raw) allocates nothing.
func (o *omissions) childOf(raw []byte, decoded string) *omissions {
	switch {
	case o == nil:
		return nil
	case raw != nil:
		return o.members[string(raw)]
	default:
		return o.members[decoded]
	}
}

func (o *omissions) add(path []string) {
	node := o
	for _, name := range path {
		next := node.members[name]
		if next == nil {
			if node.members == nil {
				node.members = map[string]*omissions{}
			}
			next = &omissions{}
			node.members[name] = next
		}
		node = next
	}
	node.omit = true
}

// inputOmissions are the trees for a bundle's input: for Pods and for every
// other kind. A member stays in when a policy names it (see namedStrings).
func inputOmissions(named map[string]bool) (pods, others *omissions, omitted []string) {
	pods, others = &omissions{}, &omissions{}
	for _, m := range omittableMembers() {
		if named[m.path[len(m.path)-1]] {
			continue
		}
		pods.add(m.path)
		if !m.podOnly {
			others.add(m.path)
		}
		omitted = append(omitted, strings.Join(m.path, "."))
	}
	if len(pods.members) == 0 {
		pods = nil
	}
	if len(others.members) == 0 {
		others = nil
	}
	return pods, others, omitted
}

// namedStrings is every string of the bundle's policies, and every
// segment of those strings between '/' and '.': a member is named by a
// reference (x.env, x["env"]), by a string in a path (object.get(c,
// ["env"], [])), or within a JSON path or pointer ("spec/volumes").
func namedStrings(c *ast.Compiler) map[string]bool {
	named := map[string]bool{}
	for _, m := range c.Modules {
		ast.WalkTerms(m, func(t *ast.Term) bool {
			if s, ok := t.Value.(ast.String); ok {
				named[string(s)] = true
				for _, seg := range strings.FieldsFunc(string(s), func(r rune) bool { return r == '/' || r == '.' }) {
					named[seg] = true
				}
			}
			return false
		})
	}
	return named
}
