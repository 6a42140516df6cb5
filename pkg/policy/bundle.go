package policy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/tester"

	"github.com/harbormaster-dev/harbormaster/pkg/config"
)

// Names fixed by the contract with the policies.
const (
	rootPackage = "harbormaster"
	libPackage  = "harbormaster.lib"
	setDeny     = "deny"
	setWarn     = "warn"
	// prefetchRule is the set of lib helpers the engine evaluates first.
	prefetchRule = "prefetch"
	testSuffix   = "_test.rego"
)

// DefaultTestTimeout bounds each bundle test when LoadOptions leaves it 0.
const DefaultTestTimeout = 5 * time.Second

// revisionLen is the number of hex digits of a bundle revision: short enough
// for a log line, long enough never to collide between two bundles.
const revisionLen = 12

// LoadOptions tune Load.
type LoadOptions struct {
	// RunTests runs the bundle's own *_test.rego tests; a bundle with a
	// failing test is rejected. Hot reload sets it so that a broken policy
	// never replaces a working one.
	RunTests bool
	// TestTimeout bounds each test; 0 means DefaultTestTimeout.
	TestTimeout time.Duration
}

// Bundle is one compiled, validated set of policies. It is immutable and
// safe for concurrent use.
type Bundle struct {
	revision string
	files    []string
	catalog  []RuleInfo
	byID     map[string]RuleInfo
	// sets are the deny and warn documents the prepared query collects, in
	// the order of its bindings.
	sets     []setRef
	query    rego.PreparedEvalQuery
	hasQuery bool
	// prefetch: the query evaluates lib.prefetch first.
	prefetch bool
	// inputOptions: the policies read input.facts, so the engine derives
	// it; the members of the reviewed objects they do not name are left
	// out (omitted lists them).
	inputOptions inputOptions
	omitted      []string
	tests        int
}

// setRef names one deny or warn set of one package and the query variable
// it is bound to.
type setRef struct {
	pkg     string // e.g. harbormaster.hostgroup
	kind    string // setDeny or setWarn
	binding string
}

// Revision is a short hash of the bundle's files (names and contents,
// tests included), logged with every decision.
func (b *Bundle) Revision() string { return b.revision }

// Files returns the bundle's .rego file names, sorted.
func (b *Bundle) Files() []string { return slices.Clone(b.files) }

// TestsRun is the number of bundle tests that ran and passed at load.
func (b *Bundle) TestsRun() int { return b.tests }

// OmittedMembers are the members of the reviewed objects that this
// bundle's input leaves out, as paths ("spec.containers.env": every
// container's env), because no policy names them; "metadata.managedFields"
// applies to every kind, the rest to Pods.
func (b *Bundle) OmittedMembers() []string { return slices.Clone(b.omitted) }

// Rule returns the catalog entry of a rule id.
func (b *Bundle) Rule(id string) (RuleInfo, bool) {
	r, ok := b.byID[id]
	return r, ok
}

// Catalog returns every deny and warn rule, sorted by id.
func (b *Bundle) Catalog() []RuleInfo { return slices.Clone(b.catalog) }

type sourceFile struct {
	name string
	data []byte
}

// Load reads every .rego file of fsys, validates and compiles the policies
// and prepares their evaluation. Errors name the file and row at fault.
func Load(ctx context.Context, fsys fs.FS, opts LoadOptions) (*Bundle, error) {
	files, err := readRegoFiles(fsys)
	if err != nil {
		return nil, err
	}
	caps := capabilities()

	var policyMods, testMods []*ast.Module
	var parseErrs []error
	for _, f := range files {
		m, err := ast.ParseModuleWithOpts(f.name, string(f.data), ast.ParserOptions{
			ProcessAnnotation: true,
			RegoVersion:       ast.RegoV1,
			Capabilities:      caps,
		})
		if err != nil {
			parseErrs = append(parseErrs, err)
			continue
		}
		if strings.HasSuffix(f.name, testSuffix) {
			testMods = append(testMods, m)
		} else {
			policyMods = append(policyMods, m)
		}
	}
	if len(parseErrs) > 0 {
		return nil, fmt.Errorf("parsing policies: %w", errors.Join(parseErrs...))
	}
	if len(policyMods) == 0 {
		return nil, errors.New("policy bundle has no policy modules (only tests or nothing)")
	}

	catalog, sets, err := validate(policyMods)
	if err != nil {
		return nil, err
	}

	// Compilation rewrites modules in place; the tests get their own copies.
	var testSet map[string]*ast.Module
	if opts.RunTests {
		testSet = make(map[string]*ast.Module, len(policyMods)+len(testMods))
		for _, m := range slices.Concat(policyMods, testMods) {
			testSet[m.Package.Location.File] = m.Copy()
		}
	}

	compiler := ast.NewCompiler().
		WithStrict(true).
		WithCapabilities(caps).
		WithEnablePrintStatements(false).
		WithDefaultRegoVersion(ast.RegoV1)
	modSet := make(map[string]*ast.Module, len(policyMods))
	for _, m := range policyMods {
		modSet[m.Package.Location.File] = m
	}
	if compiler.Compile(modSet); compiler.Failed() {
		return nil, fmt.Errorf("compiling policies: %w", compiler.Errors)
	}

	b := &Bundle{
		revision: revision(files),
		catalog:  catalog,
		byID:     make(map[string]RuleInfo, len(catalog)),
		sets:     sets,
	}
	for _, f := range files {
		b.files = append(b.files, f.name)
	}
	for _, r := range catalog {
		b.byID[r.ID] = r
	}

	if opts.RunTests {
		n, err := runTests(ctx, testSet, caps, opts.TestTimeout)
		if err != nil {
			return nil, err
		}
		b.tests = n
	}

	if len(sets) > 0 {
		b.prefetch = hasPrefetch(compiler)
		b.inputOptions = inputOptions{facts: readsInput(compiler, "facts")}
		if b.inputOptions.facts {
			if b.inputOptions.facts, err = libMirrorsFacts(ctx, compiler); err != nil {
				return nil, err
			}
		}
		b.inputOptions.omitPods, b.inputOptions.omitOthers, b.omitted = inputOmissions(namedStrings(compiler))
		b.query, err = rego.New(
			rego.Compiler(compiler),
			rego.Query(collectQuery(sets, b.prefetch)),
		).PrepareForEval(ctx)
		if err != nil {
			return nil, fmt.Errorf("preparing policy query: %w", err)
		}
		b.hasQuery = true
	}
	return b, nil
}

// capabilities are this OPA's builtins minus those a policy must not call:
// admission must not wait on the network, and a policy has no business
// reading the OPA runtime.
func capabilities() *ast.Capabilities {
	caps := ast.CapabilitiesForThisVersion()
	caps.Builtins = slices.DeleteFunc(slices.Clone(caps.Builtins), func(b *ast.Builtin) bool {
		switch b.Name {
		case "http.send", "net.lookup_ip_addr", "opa.runtime":
			return true
		}
		return false
	})
	return caps
}

func readRegoFiles(fsys fs.FS) ([]sourceFile, error) {
	var files []sourceFile
	err := fs.WalkDir(fsys, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.HasSuffix(path, ".rego") {
			return nil
		}
		data, err := fs.ReadFile(fsys, path)
		if err != nil {
			return err
		}
		files = append(files, sourceFile{name: path, data: data})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading policies: %w", err)
	}
	if len(files) == 0 {
		return nil, errors.New("policy bundle has no .rego files")
	}
	// WalkDir is lexical already; sorting keeps the revision independent of
	// any fs.FS that is not.
	sort.Slice(files, func(i, j int) bool { return files[i].name < files[j].name })
	return files, nil
}

func revision(files []sourceFile) string {
	h := sha256.New()
	for _, f := range files {
		// NUL separators: "a"+"bc" and "ab"+"c" must not hash alike.
		h.Write([]byte(f.name))
		h.Write([]byte{0})
		h.Write(f.data)
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:revisionLen]
}

// collectQuery binds every deny and warn set to its own variable: one
// evaluation returns them all, and each violation keeps its set. With
// prefetch, it first evaluates data.harbormaster.lib.prefetch (see
// hasPrefetch).
func collectQuery(sets []setRef, prefetch bool) string {
	parts := make([]string, 0, len(sets)+1)
	if prefetch {
		parts = append(parts, "_ = data."+libPackage+"."+prefetchRule)
	}
	for _, s := range sets {
		parts = append(parts, fmt.Sprintf("%s := data.%s.%s", s.binding, s.pkg, s.kind))
	}
	return strings.Join(parts, "; ")
}

// hasPrefetch reports whether the compiled bundle defines
// data.harbormaster.lib.prefetch, the helpers its rules share: evaluated
// before the rules, they are computed near the bottom of the Go stack
// rather than inside the first rule that reads them (OPA evaluates in
// continuation-passing style, so that rule's evaluation would go on on top
// of theirs). The evaluation's stack shrinks, and with it the cost of
// growing a fresh goroutine's stack and of scanning it during garbage
// collection.
func hasPrefetch(c *ast.Compiler) bool {
	rules := c.GetRules(ast.MustParseRef("data." + libPackage + "." + prefetchRule))
	// A function of that name is not the prefetch set.
	return len(rules) > 0 && !slices.ContainsFunc(rules, func(r *ast.Rule) bool { return len(r.Head.Args) > 0 })
}

// managedFieldsKey is the metadata member the engine leaves out of the
// input unless a policy names it: the API server's field-ownership
// records, about half of a pod as admission receives it.
const managedFieldsKey = "managedFields"

// libMirrorsFacts reports whether the bundle's helper library, if it has
// one, reviews the kinds, subresources and container lists the engine
// derives input.facts for: facts derived otherwise would not be what the
// library computes without them. A bundle without the library's
// definitions reads facts for what they are.
func libMirrorsFacts(ctx context.Context, compiler *ast.Compiler) (bool, error) {
	pq, err := rego.New(rego.Compiler(compiler), rego.Query(libScopeQuery)).PrepareForEval(ctx)
	if err != nil {
		return false, fmt.Errorf("preparing the helper library check: %w", err)
	}
	rs, err := pq.Eval(ctx)
	if err != nil {
		return false, fmt.Errorf("evaluating the helper library check: %w", err)
	}
	if len(rs) == 0 {
		return true, nil
	}
	return reflect.DeepEqual(rs[0].Bindings["x"], libScopeValue()), nil
}

// readsInput reports whether a policy refers to input.<field>: the engine
// derives input.facts only for bundles that read it.
func readsInput(c *ast.Compiler, field string) bool {
	prefix := ast.InputRootRef.Append(ast.StringTerm(field))
	found := false
	for _, m := range c.Modules {
		ast.WalkRefs(m, func(r ast.Ref) bool {
			found = found || r.HasPrefix(prefix)
			return found
		})
		if found {
			return true
		}
	}
	return false
}

func runTests(ctx context.Context, modules map[string]*ast.Module, caps *ast.Capabilities, timeout time.Duration) (int, error) {
	if timeout <= 0 {
		timeout = DefaultTestTimeout
	}
	compiler := ast.NewCompiler().
		WithCapabilities(caps).
		WithEnablePrintStatements(false).
		WithDefaultRegoVersion(ast.RegoV1)
	ch, err := tester.NewRunner().
		SetCompiler(compiler).
		SetModules(modules).
		SetTimeout(timeout).
		CapturePrintOutput(false).
		RunTests(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("compiling policy tests: %w", err)
	}
	var passed int
	var failed []string
	for r := range ch {
		if r.Pass() {
			passed++
			continue
		}
		if r.Skip {
			continue
		}
		name := fmt.Sprintf("%s.%s (%s)", r.Package, r.Name, locationString(r.Location))
		if r.Error != nil {
			name += ": " + r.Error.Error()
		}
		failed = append(failed, name)
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("running policy tests: %w", err)
	}
	if len(failed) > 0 {
		sort.Strings(failed)
		return 0, fmt.Errorf("policy bundle rejected: %d test(s) failed:\n  %s", len(failed), strings.Join(failed, "\n  "))
	}
	return passed, nil
}

func locationString(loc *ast.Location) string {
	if loc == nil {
		return "unknown location"
	}
	return fmt.Sprintf("%s:%d", loc.File, loc.Row)
}

// validate checks the contract of every policy module and returns the
// catalog, sorted by id, and the deny and warn sets to collect.
func validate(modules []*ast.Module) ([]RuleInfo, []setRef, error) {
	annotations, annErrs := ast.BuildAnnotationSet(modules)
	if len(annErrs) > 0 {
		return nil, nil, fmt.Errorf("reading METADATA: %w", annErrs)
	}

	var errs []error
	var catalog []RuleInfo
	seenID := map[string]RuleInfo{}
	seenSet := map[setRef]bool{}
	for _, m := range modules {
		file := m.Package.Location.File
		pkg := strings.TrimPrefix(m.Package.Path.String(), "data.")
		if pkg != rootPackage && !strings.HasPrefix(pkg, rootPackage+".") {
			errs = append(errs, fmt.Errorf("%s:%d: package %s is outside package %s", file, m.Package.Location.Row, pkg, rootPackage))
			continue
		}
		for _, rule := range m.Rules {
			kind, ok := setKind(rule)
			if !ok {
				continue
			}
			at := fmt.Sprintf("%s:%d", file, rule.Location.Row)
			if pkg == libPackage {
				errs = append(errs, fmt.Errorf("%s: package %s holds shared helpers and must not define %s", at, libPackage, kind))
				continue
			}
			if len(rule.Head.Args) > 0 || rule.Head.DocKind() != ast.PartialSetDoc {
				errs = append(errs, fmt.Errorf("%s: %s must be a multi-value rule: %s contains violation if { ... }", at, kind, kind))
				continue
			}
			info, err := ruleInfo(annotations.GetRuleScope(rule), kind, at)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			info.Package, info.Set, info.File, info.Row = pkg, kind, file, rule.Location.Row
			if prev, dup := seenID[info.ID]; dup {
				errs = append(errs, fmt.Errorf("%s: rule id %s is already declared at %s", at, info.ID, prev.Location()))
				continue
			}
			if id, ok := literalViolationID(rule); ok && id != info.ID {
				errs = append(errs, fmt.Errorf("%s: violation id %q differs from METADATA custom.id %q", at, id, info.ID))
				continue
			}
			seenID[info.ID] = info
			catalog = append(catalog, info)
			seenSet[setRef{pkg: pkg, kind: kind}] = true
		}
	}
	if len(errs) > 0 {
		return nil, nil, fmt.Errorf("invalid policy bundle: %w", errors.Join(errs...))
	}

	sort.Slice(catalog, func(i, j int) bool { return catalog[i].ID < catalog[j].ID })
	sets := make([]setRef, 0, len(seenSet))
	for s := range seenSet {
		sets = append(sets, s)
	}
	sort.Slice(sets, func(i, j int) bool {
		if sets[i].pkg != sets[j].pkg {
			return sets[i].pkg < sets[j].pkg
		}
		return sets[i].kind < sets[j].kind
	})
	for i := range sets {
		sets[i].binding = fmt.Sprintf("%s%d", sets[i].kind, i)
	}
	return catalog, sets, nil
}

// setKind reports whether rule defines the deny or warn document of its
// package.
func setKind(rule *ast.Rule) (string, bool) {
	ref := rule.Head.Ref()
	if len(ref) != 1 {
		return "", false
	}
	v, ok := ref[0].Value.(ast.Var)
	if !ok {
		return "", false
	}
	switch name := string(v); name {
	case setDeny, setWarn:
		return name, true
	}
	return "", false
}

// ruleInfo reads the rule-scoped METADATA of a deny or warn rule.
func ruleInfo(anns []*ast.Annotations, kind, at string) (RuleInfo, error) {
	if len(anns) == 0 {
		return RuleInfo{}, fmt.Errorf("%s: %s rule has no METADATA (custom.id and custom.enforcement are required)", at, kind)
	}
	a := anns[0] // the block right above the rule
	var info RuleInfo
	info.Title, info.Description = a.Title, strings.TrimSpace(a.Description)
	var errs []error
	str := func(key string, required bool) string {
		v, present := a.Custom[key]
		if !present {
			if required {
				errs = append(errs, fmt.Errorf("%s: METADATA custom.%s is required", at, key))
			}
			return ""
		}
		switch v := v.(type) {
		case string:
			if v == "" && required {
				errs = append(errs, fmt.Errorf("%s: METADATA custom.%s is empty", at, key))
			}
			return v
		case []any:
			// A rule may map to several controls.
			parts := make([]string, 0, len(v))
			for _, e := range v {
				s, ok := e.(string)
				if !ok {
					errs = append(errs, fmt.Errorf("%s: METADATA custom.%s must be a string or a list of strings", at, key))
					return ""
				}
				parts = append(parts, s)
			}
			if key == "control" {
				return strings.Join(parts, ", ")
			}
		}
		errs = append(errs, fmt.Errorf("%s: METADATA custom.%s must be a string, not %v", at, key, v))
		return ""
	}
	info.ID = str("id", true)
	enforcement := str("enforcement", true)
	info.Severity = str("severity", false)
	info.Control = str("control", false)
	if enforcement != "" {
		e := config.Enforcement(enforcement)
		switch {
		case !validEnforcement(e):
			errs = append(errs, fmt.Errorf("%s: METADATA custom.enforcement %q must be deny, warn or dryrun", at, enforcement))
		case kind == setDeny && e == config.EnforcementWarn:
			errs = append(errs, fmt.Errorf("%s: deny rule %s declares enforcement warn; use deny or dryrun, or move it to warn", at, info.ID))
		case kind == setWarn && e == config.EnforcementDeny:
			errs = append(errs, fmt.Errorf("%s: warn rule %s declares enforcement deny; use warn or dryrun, or move it to deny", at, info.ID))
		}
		info.Enforcement = e
	}
	return info, errors.Join(errs...)
}

func validEnforcement(e config.Enforcement) bool {
	switch e {
	case config.EnforcementDeny, config.EnforcementWarn, config.EnforcementDryRun:
		return true
	}
	return false
}

// literalViolationID finds the id a rule emits when it is spelt as a
// constant, either in the head or in `violation := {...}` in the body. It
// catches the copy-pasted rule whose METADATA says one id and whose
// violations say another.
func literalViolationID(rule *ast.Rule) (string, bool) {
	key := rule.Head.Key
	if id, ok := objectID(key); ok {
		return id, true
	}
	v, ok := key.Value.(ast.Var)
	if !ok {
		return "", false
	}
	for _, expr := range rule.Body {
		if !expr.IsAssignment() && !expr.IsEquality() {
			continue
		}
		lhs, rhs := expr.Operand(0), expr.Operand(1)
		if lhs == nil || rhs == nil {
			continue
		}
		if lv, ok := lhs.Value.(ast.Var); ok && lv == v {
			return objectID(rhs)
		}
	}
	return "", false
}

func objectID(t *ast.Term) (string, bool) {
	obj, ok := t.Value.(ast.Object)
	if !ok {
		return "", false
	}
	idTerm := obj.Get(ast.StringTerm("id"))
	if idTerm == nil {
		return "", false
	}
	s, ok := idTerm.Value.(ast.String)
	return string(s), ok
}
