package policy

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown"

	"github.com/harbormaster-dev/harbormaster/pkg/config"
)

// DefaultEvalTimeout bounds one evaluation when EngineOptions leaves it 0.
// Policies take well under a millisecond; the bound only stops a runaway
// rule from holding an admission request until the API server gives up.
const DefaultEvalTimeout = time.Second

// ErrNoBundle is returned by Evaluate before any bundle is installed.
var ErrNoBundle = errors.New("no policy bundle loaded")

// EngineOptions tune an Engine.
type EngineOptions struct {
	// Timeout bounds each evaluation, in addition to the caller's context;
	// 0 means DefaultEvalTimeout.
	Timeout time.Duration
	// StrictBuiltinErrors turns a builtin error (say units.parse on a
	// malformed quantity) into an evaluation error. By default OPA makes the
	// failing expression undefined, which silently skips a deny rule: strict
	// mode fails closed instead, through the webhook's failure handling.
	StrictBuiltinErrors bool
}

// Engine evaluates admission requests against the current bundle. It is
// safe for concurrent use; Swap never blocks Evaluate.
type Engine struct {
	bundle        atomic.Pointer[Bundle]
	cfg           atomic.Pointer[cachedConfig]
	timeout       time.Duration
	strictBuiltin bool
	defaultConfig *config.Config
	// keys are shared terms for common object keys of the input; read only.
	keys map[string]*ast.Term
	// caches are idle virtual caches, reset, for the next evaluations.
	caches sync.Pool
}

// cachedConfig holds the AST forms of the last configuration seen and of
// its index: building them grows with the number of tenants and would
// dominate every evaluation, while the configuration changes rarely.
type cachedConfig struct {
	cfg   *config.Config
	terms configTerms
}

// EvalStackBytes is the goroutine stack an evaluation needs: OPA evaluates
// recursively, and the real policies reach about 128 KiB
// (TestEvaluateStackSize). A caller on a fresh goroutine grows its stack
// by this much first (internal/stack.Grow), as the policy webhook's
// handler does for each request, or the runtime grows it by doublings deep
// in the recursion.
const EvalStackBytes = 128 << 10

// NewEngine returns an engine serving b, which may be nil until Swap.
func NewEngine(b *Bundle, opts EngineOptions) *Engine {
	e := &Engine{timeout: opts.Timeout, strictBuiltin: opts.StrictBuiltinErrors, defaultConfig: config.Default(), keys: newSharedKeys()}
	e.caches.New = func() any { return newVirtualCache() }
	if e.timeout <= 0 {
		e.timeout = DefaultEvalTimeout
	}
	e.bundle.Store(b)
	return e
}

// Swap installs b for the evaluations that start from now on and returns
// the previous bundle. Evaluations in flight finish on the bundle they
// started with.
func (e *Engine) Swap(b *Bundle) *Bundle { return e.bundle.Swap(b) }

// Bundle returns the serving bundle, nil if none.
func (e *Engine) Bundle() *Bundle { return e.bundle.Load() }

// Evaluate runs every deny and warn rule of the serving bundle on in. The
// error is non-nil when the request could not be judged (bad input, Rego
// runtime error, panic, deadline); the returned Decision still carries the
// bundle revision, tenant and latency for the decision log, and the caller
// applies its failure policy. Requests in exempt namespaces are allowed
// without evaluation: exempt namespaces are never judged.
func (e *Engine) Evaluate(ctx context.Context, in Input) (d Decision, err error) {
	start := time.Now()
	defer func() { d.Latency = time.Since(start) }()

	b := e.bundle.Load()
	if b == nil {
		return d, ErrNoBundle
	}
	d.BundleRevision = b.revision
	if in.Config == nil {
		in.Config = e.defaultConfig
	}
	cfg, err := e.configTerms(in.Config)
	if err != nil {
		return d, err
	}
	doc, err := buildDocument(in, in.Config, cfg.indexDoc)
	if err != nil {
		return d, err
	}
	if doc.Tenant != nil {
		d.Tenant = doc.Tenant.Name
	}
	d.ExemptNamespace = doc.ExemptNamespace
	// Exempt namespaces are never judged (see exemptNamespaces in
	// docs/configuration.md): no need to ask the policies.
	if !b.hasQuery || doc.ExemptNamespace {
		d.Allowed = true
		return d, nil
	}

	input, err := doc.value(cfg, e.keys, b.inputOptions)
	if err != nil {
		return d, err
	}

	ctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	// OPA polls a Cancel. Without one of ours it starts a goroutine per
	// evaluation to watch ctx, and starting and ending it wakes another
	// processor twice per request; AfterFunc runs only when ctx is done.
	stop := topdown.NewCancel()
	defer context.AfterFunc(ctx, stop.Cancel)()
	// OPA is done with the cache when Eval returns: its results are
	// converted to Go values.
	cache := e.caches.Get().(*virtualCache)
	defer func() {
		cache.reset()
		e.caches.Put(cache)
	}()
	// Nothing reads OPA's per-evaluation timers: the decision log has the
	// latency.
	opts := []rego.EvalOption{rego.EvalParsedInput(input), rego.EvalVirtualCache(cache), rego.EvalMetrics(metrics.NoOp()), rego.EvalExternalCancel(stop)}
	var builtinErrs []topdown.Error
	if e.strictBuiltin {
		opts = append(opts, rego.EvalBuiltinErrorList(&builtinErrs))
	}
	rs, err := safeEval(func() (rego.ResultSet, error) { return b.query.Eval(ctx, opts...) })
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return d, fmt.Errorf("evaluating policy bundle %s: %w (%w)", b.revision, ctxErr, err)
		}
		return d, fmt.Errorf("evaluating policy bundle %s: %w", b.revision, err)
	}
	if len(builtinErrs) > 0 {
		return d, fmt.Errorf("evaluating policy bundle %s: builtin error (strict mode): %w", b.revision, &builtinErrs[0])
	}
	d.Violations, err = b.violations(rs, doc.Config.Policy.Enforcement)
	if err != nil {
		return d, err
	}
	d.Allowed = len(d.Denials()) == 0
	return d, nil
}

func (e *Engine) configTerms(cfg *config.Config) (configTerms, error) {
	if c := e.cfg.Load(); c != nil && c.cfg == cfg {
		return c.terms, nil
	}
	t, err := newConfigTerms(cfg)
	if err != nil {
		return configTerms{}, err
	}
	// Racing stores are harmless: both hold a correct value for their cfg.
	e.cfg.Store(&cachedConfig{cfg: cfg, terms: t})
	return t, nil
}

// safeEval turns a panic inside OPA into an error: one bad request or
// policy must not take the webhook down.
func safeEval(eval func() (rego.ResultSet, error)) (rs rego.ResultSet, err error) {
	defer func() {
		if r := recover(); r != nil {
			rs, err = nil, fmt.Errorf("policy evaluation panicked: %v", r)
		}
	}()
	return eval()
}

// violations decodes the collected sets and applies the catalog and the
// configured enforcement overrides.
func (b *Bundle) violations(rs rego.ResultSet, overrides map[string]config.Enforcement) ([]Violation, error) {
	if len(rs) == 0 {
		// Every collected set is defined (possibly empty) by construction.
		return nil, fmt.Errorf("evaluating policy bundle %s: query result is undefined", b.revision)
	}
	var out []Violation
	for _, s := range b.sets {
		items, ok := rs[0].Bindings[s.binding].([]any)
		if !ok {
			return nil, fmt.Errorf("evaluating policy bundle %s: data.%s.%s is %T, not a set", b.revision, s.pkg, s.kind, rs[0].Bindings[s.binding])
		}
		for _, item := range items {
			v := decodeViolation(item)
			if info, known := b.byID[v.ID]; known {
				v.Enforcement, v.Severity, v.Title = info.Enforcement, info.Severity, info.Title
			} else {
				// Not in the catalog: the set it came from is all we know.
				v.Enforcement = config.Enforcement(s.kind)
			}
			if o, ok := overrides[v.ID]; ok && validEnforcement(o) {
				v.Enforcement = o
			}
			out = append(out, v)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if ra, rb := enforcementRank(a.Enforcement), enforcementRank(b.Enforcement); ra != rb {
			return ra < rb
		}
		if a.ID != b.ID {
			return a.ID < b.ID
		}
		if a.Field != b.Field {
			return a.Field < b.Field
		}
		return a.Msg < b.Msg
	})
	return out, nil
}

// decodeViolation reads {"id", "msg", "field"}; a bare string is taken as
// the message so that a sloppy rule still reports something readable.
func decodeViolation(item any) Violation {
	switch x := item.(type) {
	case map[string]any:
		return Violation{ID: asString(x["id"]), Msg: asString(x["msg"]), Field: asString(x["field"])}
	case string:
		return Violation{Msg: x}
	default:
		return Violation{Msg: fmt.Sprint(x)}
	}
}

func asString(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	default:
		return fmt.Sprint(x)
	}
}

func enforcementRank(e config.Enforcement) int {
	switch e {
	case config.EnforcementDeny:
		return 0
	case config.EnforcementWarn:
		return 1
	default:
		return 2
	}
}

// Result is the strongest effective action of a decision.
type Result string

const (
	ResultAllow  Result = "allow"
	ResultDeny   Result = "deny"
	ResultWarn   Result = "warn"
	ResultDryRun Result = "dryrun"
)

// Violation is one element of a deny or warn set, with its catalog data.
type Violation struct {
	ID    string `json:"id"`
	Msg   string `json:"msg"`
	Field string `json:"field,omitempty"`
	// Enforcement is the effective action: the rule's declared one unless
	// config policy.enforcement overrides it.
	Enforcement config.Enforcement `json:"enforcement"`
	Severity    string             `json:"severity,omitempty"`
	Title       string             `json:"title,omitempty"`
}

// String is the violation as users read it: "[HM-HG-001] message".
func (v Violation) String() string {
	if v.ID == "" {
		return v.Msg
	}
	return "[" + v.ID + "] " + v.Msg
}

// Decision is the outcome of one evaluation.
type Decision struct {
	// Allowed is false when at least one violation's effective enforcement
	// is deny.
	Allowed bool
	// Violations are sorted deny, warn, dryrun, then by id.
	Violations      []Violation
	Tenant          string
	ExemptNamespace bool
	BundleRevision  string
	Latency         time.Duration
}

// Denials are the violations that reject the request.
func (d Decision) Denials() []Violation { return d.filter(config.EnforcementDeny) }

// Warnings are the violations returned as admission warnings.
func (d Decision) Warnings() []Violation { return d.filter(config.EnforcementWarn) }

// DryRuns are the violations that are only logged.
func (d Decision) DryRuns() []Violation { return d.filter(config.EnforcementDryRun) }

func (d Decision) filter(e config.Enforcement) []Violation {
	var out []Violation
	for _, v := range d.Violations {
		if v.Enforcement == e {
			out = append(out, v)
		}
	}
	return out
}

// Result is the strongest effective action: deny, warn, dryrun or allow.
func (d Decision) Result() Result {
	if len(d.Violations) == 0 {
		return ResultAllow
	}
	// Violations are sorted strongest first.
	switch d.Violations[0].Enforcement {
	case config.EnforcementDeny:
		return ResultDeny
	case config.EnforcementWarn:
		return ResultWarn
	default:
		return ResultDryRun
	}
}

// DenialMessage is the admission rejection message: every denial, joined.
func (d Decision) DenialMessage() string {
	return strings.Join(violationStrings(d.Denials()), "; ")
}

// AdmissionWarnings are the warn violations, one admission warning each.
func (d Decision) AdmissionWarnings() []string { return violationStrings(d.Warnings()) }

// Messages are every violation, for the decision log.
func (d Decision) Messages() []string { return violationStrings(d.Violations) }

// RuleIDs are the distinct ids of every violation, sorted.
func (d Decision) RuleIDs() []string {
	seen := map[string]bool{}
	var ids []string
	for _, v := range d.Violations {
		if v.ID != "" && !seen[v.ID] {
			seen[v.ID] = true
			ids = append(ids, v.ID)
		}
	}
	sort.Strings(ids)
	return ids
}

func violationStrings(vs []Violation) []string {
	if len(vs) == 0 {
		return nil
	}
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.String()
	}
	return out
}

// Reload loads a bundle from fsys and installs it only if it loads (with
// opts.RunTests, only if its tests pass): on error the serving bundle
// keeps serving. It returns the installed bundle.
func (e *Engine) Reload(ctx context.Context, fsys fs.FS, opts LoadOptions) (*Bundle, error) {
	b, err := Load(ctx, fsys, opts)
	if err != nil {
		return nil, err
	}
	e.Swap(b)
	return b, nil
}
