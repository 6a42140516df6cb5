package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/harbormaster-dev/harbormaster/pkg/policy"
	"github.com/harbormaster-dev/harbormaster/policies"
)

// TestPolicyCatalogIsCurrent fails when docs/policies.md no longer matches
// the METADATA of the embedded policies.
func TestPolicyCatalogIsCurrent(t *testing.T) {
	b, err := policy.Load(t.Context(), policies.FS, policy.LoadOptions{})
	require.NoError(t, err)
	var want bytes.Buffer
	require.NoError(t, renderCatalog(&want, b))

	path := filepath.Join("..", "..", "docs", "policies.md")
	got, err := os.ReadFile(path)
	require.NoError(t, err, "docs/policies.md is missing: run `make catalog`")
	if bytes.Equal(got, want.Bytes()) {
		return
	}
	gotLines, wantLines := strings.Split(string(got), "\n"), strings.Split(want.String(), "\n")
	for i := 0; i < len(gotLines) || i < len(wantLines); i++ {
		var g, w string
		if i < len(gotLines) {
			g = gotLines[i]
		}
		if i < len(wantLines) {
			w = wantLines[i]
		}
		if g != w {
			t.Fatalf("docs/policies.md is stale: run `make catalog`.\nFirst difference at line %d:\n  checked in: %s\n  generated:  %s", i+1, g, w)
		}
	}
}
