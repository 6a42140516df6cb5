package e2e

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/harbormaster-dev/harbormaster/pkg/policy"
	"github.com/harbormaster-dev/harbormaster/policies"
	"github.com/harbormaster-dev/harbormaster/test/framework"
)

// buildCommand compiles the main package pkg (e.g. "./cmd/webhook") into a
// temporary directory and returns the binary's path.
func buildCommand(t *testing.T, pkg string) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	require.NoError(t, err, "the go tool builds the commands under test")
	root, err := framework.RepoRoot()
	require.NoError(t, err)
	out := filepath.Join(t.TempDir(), filepath.Base(pkg))
	cmd := exec.CommandContext(t.Context(), goBin, "build", "-o", out, pkg)
	cmd.Dir = root
	logs, err := cmd.CombinedOutput()
	require.NoError(t, err, "building %s: %s", pkg, logs)
	return out
}

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
