// Package policy is Harbormaster's embedded OPA engine: it loads the Rego
// governance policies from an fs.FS into an immutable Bundle (compiled once,
// validated, catalogued, optionally self-tested) and evaluates admission
// requests against the current bundle.
//
// Contract with the policies: every non-test module lives under package
// harbormaster.<area>; rules named deny and warn are multi-value sets of
// violations {"id", "msg", "field"}, each rule carrying a METADATA block with
// custom.id and custom.enforcement (deny|warn|dryrun), plus title,
// description, custom.severity and custom.control for the catalog. Shared
// helpers live in harbormaster.lib and define no deny or warn. If
// harbormaster.lib defines a set prefetch, the engine evaluates it before
// the deny and warn sets (see hasPrefetch).
//
// Failure semantics: Evaluate never panics. A Rego runtime error, a panic
// inside OPA or an exceeded deadline is returned as an error, and the caller
// (the webhook) decides what that means; for tenant namespaces it denies,
// which mirrors failurePolicy: Fail.
package policy
