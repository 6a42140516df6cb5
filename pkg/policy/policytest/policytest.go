// Package policytest holds policy bundles for the tests of packages that
// evaluate policies (audit, explain, the webhook).
package policytest

import (
	"testing"
	"testing/fstest"

	"github.com/harbormaster-dev/harbormaster/pkg/policy"
)

// RuntimeErrorRuleID is the id of RuntimeErrorBundle's one rule.
const RuntimeErrorRuleID = "HM-XX-001"

// RuntimeErrorBundle is a bundle that compiles but fails on every object
// with a name: its one deny rule uses a helper that has two values at once,
// a Rego runtime error.
func RuntimeErrorBundle(tb testing.TB) *policy.Bundle {
	tb.Helper()
	broken := fstest.MapFS{"broken.rego": {Data: []byte(`package harbormaster.broken

conflict := 1 if input.request.object.metadata.name != ""

conflict := 2 if input.request.object.metadata.name != ""

# METADATA
# title: Broken
# custom:
#   id: ` + RuntimeErrorRuleID + `
#   enforcement: deny
deny contains {"id": "` + RuntimeErrorRuleID + `", "msg": "never", "field": ""} if conflict == 3
`)}}
	bundle, err := policy.Load(tb.Context(), broken, policy.LoadOptions{})
	if err != nil {
		tb.Fatalf("loading the runtime-error bundle: %v", err)
	}
	return bundle
}
