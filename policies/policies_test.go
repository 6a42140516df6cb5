package policies_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/harbormaster-dev/harbormaster/pkg/policy"
	"github.com/harbormaster-dev/harbormaster/policies"
)

// TestRegoTests runs every *_test.rego of the embedded bundle through OPA's
// Go tester, exactly as the webhook does before serving a bundle, and checks
// the METADATA contract every auditor-facing rule must meet.
func TestRegoTests(t *testing.T) {
	b, err := policy.Load(t.Context(), policies.FS, policy.LoadOptions{RunTests: true})
	require.NoError(t, err)
	require.Greater(t, b.TestsRun(), 100, "the bundle's Rego tests ran")

	catalog := b.Catalog()
	require.NotEmpty(t, catalog)
	for _, r := range catalog {
		assert.NotEmpty(t, r.Title, r.ID)
		assert.NotEmpty(t, r.Description, r.ID)
		assert.NotEmpty(t, r.Control, r.ID)
		assert.Contains(t, []string{"low", "medium", "high", "critical"}, r.Severity, r.ID)
	}
}
