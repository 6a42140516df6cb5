package policy

import (
	"bytes"
	"context"
	"fmt"
	"github.com/harbormaster-dev/harbormaster/policies"
	"io/fs"
	"os"
	"os/exec"
	"regexp"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"

	"github.com/harbormaster-dev/harbormaster/pkg/config"
)

func TestLoadFixtureBundle(t *testing.T) {
	b := loadDir(t, "testdata/bundle", LoadOptions{RunTests: true})

	require.Regexp(t, regexp.MustCompile(`^[0-9a-f]{12}$`), b.Revision())
	require.Equal(t, 4, b.TestsRun())
	require.Equal(t, []string{"gpu.rego", "lib.rego", "registry.rego", "tenancy.rego", "tenancy_test.rego"}, b.Files())

	var ids []string
	for _, r := range b.Catalog() {
		ids = append(ids, r.ID)
	}
	require.Equal(t, []string{"HM-GPU-001", "HM-GPU-002", "HM-HG-001", "HM-HG-002", "HM-REG-001", "HM-REG-002", "HM-TEN-001"}, ids)

	hg, ok := b.Rule("HM-HG-001")
	require.True(t, ok)
	require.Equal(t, RuleInfo{
		ID:          "HM-HG-001",
		Title:       "Pod pins a node",
		Description: "Tenant pods must not set spec.nodeName; placement is the scheduler's job.",
		Severity:    "high",
		Enforcement: config.EnforcementDeny,
		Control:     "TEN-2, PLC-1",
		Package:     "harbormaster.tenancy",
		Set:         "deny",
		File:        "tenancy.rego",
		Row:         34,
	}, hg)
	reg, _ := b.Rule("HM-REG-001")
	require.Equal(t, config.EnforcementDryRun, reg.Enforcement)
	require.Equal(t, "deny", reg.Set)
}

// A policy module with the given rule body under one METADATA block.
func module(pkg, custom, rule string) string {
	return "package " + pkg + "\n\n# METADATA\n# title: T\n# custom:\n" + custom + rule
}

const okCustom = "#   id: HM-X-001\n#   enforcement: deny\n"

const okDeny = `deny contains v if {
	input.x
	v := {"id": "HM-X-001", "msg": "m", "field": "f"}
}
`

func TestLoadRejects(t *testing.T) {
	tests := []struct {
		name    string
		files   map[string]string
		wantErr []string
	}{
		{
			name:    "no rego files",
			files:   map[string]string{"README.md": "hi"},
			wantErr: []string{"no .rego files"},
		},
		{
			name:    "only tests",
			files:   map[string]string{"a_test.rego": "package harbormaster.a_test\n\ntest_x if true\n"},
			wantErr: []string{"no policy modules"},
		},
		{
			name:    "parse error names the file",
			files:   map[string]string{"bad.rego": "package harbormaster.bad\n\ndeny contains v if {\n"},
			wantErr: []string{"bad.rego:"},
		},
		{
			name:    "no METADATA",
			files:   map[string]string{"a.rego": "package harbormaster.a\n\n" + okDeny},
			wantErr: []string{"a.rego:3: deny rule has no METADATA"},
		},
		{
			name:    "missing id",
			files:   map[string]string{"a.rego": module("harbormaster.a", "#   enforcement: deny\n", okDeny)},
			wantErr: []string{"a.rego:7: METADATA custom.id is required"},
		},
		{
			name:    "missing enforcement",
			files:   map[string]string{"a.rego": module("harbormaster.a", "#   id: HM-X-001\n", okDeny)},
			wantErr: []string{"a.rego:7: METADATA custom.enforcement is required"},
		},
		{
			name:    "unknown enforcement",
			files:   map[string]string{"a.rego": module("harbormaster.a", "#   id: HM-X-001\n#   enforcement: block\n", okDeny)},
			wantErr: []string{`a.rego:8: METADATA custom.enforcement "block" must be deny, warn or dryrun`},
		},
		{
			name:    "id is not a string",
			files:   map[string]string{"a.rego": module("harbormaster.a", "#   id: 12\n#   enforcement: deny\n", okDeny)},
			wantErr: []string{"a.rego:8: METADATA custom.id must be a string"},
		},
		{
			name:    "deny rule declaring warn",
			files:   map[string]string{"a.rego": module("harbormaster.a", "#   id: HM-X-001\n#   enforcement: warn\n", okDeny)},
			wantErr: []string{"a.rego:8: deny rule HM-X-001 declares enforcement warn"},
		},
		{
			name: "warn rule declaring deny",
			files: map[string]string{"a.rego": module("harbormaster.a", okCustom,
				"warn contains v if {\n\tinput.x\n\tv := {\"id\": \"HM-X-001\", \"msg\": \"m\"}\n}\n")},
			wantErr: []string{"a.rego:8: warn rule HM-X-001 declares enforcement deny"},
		},
		{
			name: "duplicate id across files",
			files: map[string]string{
				"a.rego": module("harbormaster.a", okCustom, okDeny),
				"b.rego": module("harbormaster.b", okCustom, okDeny),
			},
			wantErr: []string{"b.rego:8: rule id HM-X-001 is already declared at a.rego:8"},
		},
		{
			name: "violation id differs from METADATA",
			files: map[string]string{"a.rego": module("harbormaster.a", okCustom,
				"deny contains v if {\n\tinput.x\n\tv := {\"id\": \"HM-Y-001\", \"msg\": \"m\"}\n}\n")},
			wantErr: []string{`a.rego:8: violation id "HM-Y-001" differs from METADATA custom.id "HM-X-001"`},
		},
		{
			name:    "lib defines deny",
			files:   map[string]string{"lib.rego": module("harbormaster.lib", okCustom, okDeny)},
			wantErr: []string{"lib.rego:8: package harbormaster.lib holds shared helpers and must not define deny"},
		},
		{
			name:    "package outside harbormaster",
			files:   map[string]string{"a.rego": module("acme.a", okCustom, okDeny)},
			wantErr: []string{"a.rego:1: package acme.a is outside package harbormaster"},
		},
		{
			name:    "deny as a complete rule",
			files:   map[string]string{"a.rego": module("harbormaster.a", okCustom, "deny := true if input.x\n")},
			wantErr: []string{"a.rego:8: deny must be a multi-value rule"},
		},
		{
			name: "strict mode: unused import",
			files: map[string]string{
				"a.rego":   "package harbormaster.a\n\nimport data.harbormaster.lib\n\n# METADATA\n# title: T\n# custom:\n" + okCustom + okDeny,
				"lib.rego": "package harbormaster.lib\n\nx := 1\n",
			},
			wantErr: []string{"a.rego:3:", "import data.harbormaster.lib unused"},
		},
		{
			name: "network builtins are not available",
			files: map[string]string{"a.rego": module("harbormaster.a", okCustom,
				"deny contains v if {\n\thttp.send({\"method\": \"GET\", \"url\": \"http://x\"})\n\tv := {\"id\": \"HM-X-001\", \"msg\": \"m\"}\n}\n")},
			wantErr: []string{"a.rego:9:", "http.send"},
		},
		{
			name: "failing bundle test",
			files: map[string]string{
				"a.rego":      module("harbormaster.a", okCustom, okDeny),
				"a_test.rego": "package harbormaster.a_test\n\nimport data.harbormaster.a\n\ntest_passes if count(a.deny) == 0\n\ntest_fires if count(a.deny) == 1 with input as {\"y\": true}\n",
			},
			wantErr: []string{"1 test(s) failed", "data.harbormaster.a_test.test_fires (a_test.rego:7)"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := loadMap(t, tt.files)
			require.Error(t, err)
			require.Nil(t, b)
			for _, want := range tt.wantErr {
				require.Contains(t, err.Error(), want)
			}
		})
	}
}

func TestLoadSkipsTestsUnlessAsked(t *testing.T) {
	fsys := fstest.MapFS{
		"a.rego":      {Data: []byte(module("harbormaster.a", okCustom, okDeny))},
		"a_test.rego": {Data: []byte("package harbormaster.a_test\n\ntest_fails if false\n")},
	}
	b, err := Load(context.Background(), fsys, LoadOptions{})
	require.NoError(t, err)
	require.Zero(t, b.TestsRun())
	_, err = Load(context.Background(), fsys, LoadOptions{RunTests: true})
	require.ErrorContains(t, err, "test_fails")
}

func TestRevision(t *testing.T) {
	a := map[string]string{"a.rego": module("harbormaster.a", okCustom, okDeny), "lib.rego": "package harbormaster.lib\n\nx := 1\n"}
	b1, err := loadMap(t, a)
	require.NoError(t, err)
	b2, err := loadMap(t, a)
	require.NoError(t, err)
	require.Equal(t, b1.Revision(), b2.Revision(), "same files, same revision")

	changed := map[string]string{"a.rego": a["a.rego"], "lib.rego": "package harbormaster.lib\n\nx := 2\n"}
	b3, err := loadMap(t, changed)
	require.NoError(t, err)
	require.NotEqual(t, b1.Revision(), b3.Revision(), "content change")

	renamed := map[string]string{"a.rego": a["a.rego"], "lib2.rego": a["lib.rego"]}
	b4, err := loadMap(t, renamed)
	require.NoError(t, err)
	require.NotEqual(t, b1.Revision(), b4.Revision(), "rename")
}

func TestRenderCatalogMarkdown(t *testing.T) {
	catalog := []RuleInfo{
		{ID: "HM-A-001", Title: "Pipes | here", Description: "Line one.\nLine two.", Severity: "high", Enforcement: config.EnforcementDeny, Control: "C-1", Package: "harbormaster.a", Set: "deny", File: "a.rego", Row: 7},
		{ID: "HM-B-001", Enforcement: config.EnforcementWarn, Package: "harbormaster.b", Set: "warn", File: "b.rego", Row: 3},
	}
	var buf bytes.Buffer
	require.NoError(t, RenderCatalogMarkdown(&buf, catalog))
	out := buf.String()
	for _, want := range []string{
		"# Harbormaster policy catalog\n",
		"| [HM-A-001](#hm-a-001) | Pipes \\| here | high | deny | C-1 | `a.rego:7` |\n",
		"| [HM-B-001](#hm-b-001) |  |  | warn |  | `b.rego:3` |\n",
		"\n## HM-A-001\n\n**Pipes | here**\n\nLine one.\nLine two.\n\n",
		"- Default enforcement: warn (set `warn`)\n",
		"- Severity: -\n",
	} {
		require.Contains(t, out, want)
	}
}

func TestRenderFixtureCatalog(t *testing.T) {
	b := loadDir(t, "testdata/bundle", LoadOptions{})
	var buf bytes.Buffer
	require.NoError(t, RenderCatalogMarkdown(&buf, b.Catalog()))
	require.Contains(t, buf.String(), "| [HM-GPU-001](#hm-gpu-001) | Too many GPUs | high | deny | CAP-1 | `gpu.rego:13` |")
}

// The embedded policies define lib.prefetch, and the query evaluates it
// first; bundles without it are queried as before.
func TestPrefetch(t *testing.T) {
	sets := []setRef{{pkg: "harbormaster.a", kind: setDeny, binding: "deny0"}}
	require.Equal(t, "_ = data.harbormaster.lib.prefetch; deny0 := data.harbormaster.a.deny", collectQuery(sets, true))
	require.Equal(t, "deny0 := data.harbormaster.a.deny", collectQuery(sets, false))

	require.True(t, loadEmbedded(t, nil).prefetch)
	require.False(t, loadDir(t, "testdata/bundle", LoadOptions{}).prefetch)
}

// The engine derives input.facts only for bundles that read it.
func TestFactsOnlyForBundlesReadingThem(t *testing.T) {
	require.True(t, loadEmbedded(t, nil).inputOptions.facts)
	require.False(t, loadDir(t, "testdata/bundle", LoadOptions{}).inputOptions.facts)
	b, err := loadMap(t, map[string]string{"a.rego": module("harbormaster.a", okCustom, `deny contains v if {
	count(input.facts.containers) > 9
	v := {"id": "HM-X-001", "msg": "m", "field": "f"}
}
`)})
	require.NoError(t, err)
	require.True(t, b.inputOptions.facts)

	// A helper library reviewing other kinds or subresources than the
	// engine derives facts for gets none: the facts would not be its own.
	lib, err := fs.ReadFile(policies.FS, "lib/lib.rego")
	require.NoError(t, err)
	withLib := func(lib string) *Bundle {
		b, err := loadMap(t, map[string]string{"lib/lib.rego": lib, "a.rego": module("harbormaster.a", okCustom, okDeny)})
		require.NoError(t, err)
		return b
	}
	require.True(t, withLib(string(lib)).inputOptions.facts)
	for _, edit := range [][2]string{
		{`	"CronJob": {"group": "batch", "template": ["spec", "jobTemplate", "spec", "template"]},` + "\n", ""},
		{`pod_subresources := {"", "resize", "ephemeralcontainers"}`, `pod_subresources := {"", "resize"}`},
		{`container_kinds := ["containers", "initContainers", "ephemeralContainers"]`, `container_kinds := ["containers", "initContainers"]`},
	} {
		changed := strings.Replace(string(lib), edit[0], edit[1], 1)
		require.NotEqual(t, string(lib), changed, edit[0])
		require.False(t, withLib(changed).inputOptions.facts, edit[0])
	}
}

// The engine leaves the omittable members out of the input unless a
// policy names them; a policy that does sees them, however it spells the
// reference, and only Pods lose the pod-only members.
func TestOmittedMembersOnlyForBundlesNamingThem(t *testing.T) {
	all := make([]string, 0, len(omittableMembers()))
	for _, m := range omittableMembers() {
		all = append(all, strings.Join(m.path, "."))
	}
	require.Equal(t, all, loadEmbedded(t, nil).OmittedMembers())
	require.Equal(t, all, loadDir(t, "testdata/bundle", LoadOptions{}).OmittedMembers())
	require.Contains(t, all, "spec.containers.env")
	require.Contains(t, all, "spec.volumes")

	cfg := scaledConfig(10)
	in := tenantInput(t, mutatedPod(t, cfg, benchPod()), cfg)
	deployment := deploymentInput(t, benchPod(), cfg)
	count := func(ref string) string {
		return `deny contains v if {
	n := count(object.get(` + ref + `, []))
	v := {"id": "HM-X-001", "msg": sprintf("%d entries", [n]), "field": "f"}
}
`
	}
	for _, c := range []struct {
		ref, kept string
		in        Input
		want      string
	}{
		{`input.request.object.metadata, "managedFields"`, "metadata.managedFields", in, "1 entries"},
		{`input.request.object, ["metadata", "managedFields"]`, "metadata.managedFields", in, "1 entries"},
		{`input.request.object.spec.containers[0], "env"`, "spec.containers.env", in, "5 entries"},
		{`input.request.object.spec, "volumes"`, "spec.volumes", in, "3 entries"},
		{`json.filter(input.request.object, ["spec/volumes"]).spec, "volumes"`, "spec.volumes", in, "3 entries"},
		{`input.request.object.spec.affinity, "podAntiAffinity"`, "spec.affinity.podAntiAffinity", in, "1 entries"},
	} {
		b, err := loadMap(t, map[string]string{"a.rego": module("harbormaster.a", okCustom, count(c.ref))})
		require.NoError(t, err)
		// Every member of that name is kept, in each container kind.
		name := c.kept[strings.LastIndexByte(c.kept, '.')+1:]
		want := slices.DeleteFunc(slices.Clone(all), func(p string) bool { return strings.HasSuffix(p, "."+name) })
		require.Equal(t, want, b.OmittedMembers(), c.ref)
		d, err := NewEngine(b, EngineOptions{}).Evaluate(context.Background(), c.in)
		require.NoError(t, err)
		require.Equal(t, []string{"[HM-X-001] " + c.want}, d.Messages(), c.ref)
	}
	// Without the name, the members are absent from a Pod; a Deployment's
	// template keeps the pod-only ones.
	b, err := loadMap(t, map[string]string{"a.rego": module("harbormaster.a", okCustom, `deny contains v if {
	some k, _ in input.request.object.metadata
	startswith(k, "managed")
	v := {"id": "HM-X-001", "msg": k, "field": "metadata"}
}

# METADATA
# title: T2
# custom:
#   id: HM-X-002
#   enforcement: deny
deny contains v if {
	some c in object.get(input.request.object, ["spec", "containers"], [])
	some k, _ in c
	k in {concat("", ["e", "nv"]), concat("", ["por", "ts"])}
	v := {"id": "HM-X-002", "msg": k, "field": "pod"}
}

# METADATA
# title: T3
# custom:
#   id: HM-X-003
#   enforcement: deny
deny contains v if {
	some c in object.get(input.request.object, ["spec", "template", "spec", "containers"], [])
	some k, _ in c
	k in {concat("", ["e", "nv"]), concat("", ["por", "ts"])}
	v := {"id": "HM-X-003", "msg": k, "field": "template"}
}
`)})
	require.NoError(t, err)
	require.Equal(t, all, b.OmittedMembers())
	d, err := NewEngine(b, EngineOptions{}).Evaluate(context.Background(), in)
	require.NoError(t, err)
	require.Empty(t, d.Messages())
	d, err = NewEngine(b, EngineOptions{}).Evaluate(context.Background(), deployment)
	require.NoError(t, err)
	require.Equal(t, []string{"[HM-X-003] env", "[HM-X-003] ports"}, d.Messages())
}

// An evaluation of the real policies fits in 256 KiB of goroutine stack
// (128 KiB at this writing; 512 KiB before lib.prefetch). The child
// process evaluates under debug.SetMaxStack, which crashes a process whose
// stack outgrows it.
func TestEvaluateStackSize(t *testing.T) {
	const maxStack = 256 << 10
	if os.Getenv("HM_TEST_MAX_STACK") != "" {
		cfg := scaledConfig(10)
		in := tenantInput(t, mutatedPod(t, cfg, benchPod()), cfg)
		engine := NewEngine(loadEmbedded(t, nil), EngineOptions{})
		debug.SetMaxStack(maxStack)
		// A new goroutine's stack grows from a few KiB.
		done := make(chan error)
		go func() {
			d, err := engine.Evaluate(context.Background(), in)
			if err == nil && !d.Allowed {
				err = fmt.Errorf("denied: %v", d.Violations)
			}
			done <- err
		}()
		require.NoError(t, <-done)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestEvaluateStackSize$")
	cmd.Env = append(os.Environ(), "HM_TEST_MAX_STACK=1")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "evaluation needs more than %d KiB of stack:\n%.2000s", maxStack>>10, out)
}

// A lib function named prefetch is not evaluated as the prefetch set.
func TestPrefetchFunctionIgnored(t *testing.T) {
	b, err := loadMap(t, map[string]string{
		"lib.rego": "package harbormaster.lib\n\nprefetch(x) := x\n",
		"a.rego":   module("harbormaster.a", okCustom, okDeny),
	})
	require.NoError(t, err)
	require.False(t, b.prefetch)
}
