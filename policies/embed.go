// Package policies embeds Harbormaster's Rego governance policies so the
// webhook ships them inside its binary.
package policies

import "embed"

// FS holds every .rego file of this directory and of lib/. The *_test.rego
// files (tests and shared fixtures) are embedded too but only `opa test`
// reads them: the engine loads the non-test files only. FS is read-only.
//
//go:embed *.rego lib/*.rego
var FS embed.FS
