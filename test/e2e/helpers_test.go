package e2e

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/harbormaster-dev/harbormaster/pkg/policy"
	"github.com/harbormaster-dev/harbormaster/policies"
)

// allPoliciesDryRun returns configYAML (which must not have a policy
// section) with every rule of the embedded policies set to dryrun.
func allPoliciesDryRun(t *testing.T, configYAML string) string {
	t.Helper()
	b, err := policy.Load(t.Context(), policies.FS, policy.LoadOptions{})
	require.NoError(t, err)
	var overrides []string
	for _, r := range b.Catalog() {
		overrides = append(overrides, fmt.Sprintf("%s: dryrun", r.ID))
	}
	require.NotEmpty(t, overrides)
	i := strings.Index(configYAML, "policy:")
	if i >= 0 {
		configYAML = configYAML[:i]
	}
	return configYAML + "policy:\n  enforcement: {" + strings.Join(overrides, ", ") + "}\n"
}
