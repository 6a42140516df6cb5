package e2e

import (
	"os/exec"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestCommandsStart builds the shipped commands and checks they start and
// describe their flags.
func TestCommandsStart(t *testing.T) {
	for _, c := range []struct {
		pkg   string
		flags []string
	}{
		{"./cmd/webhook", []string{"-config-map", "-policy-config-map", "-decision-log-file", "-cert-dir", "-kubeconfig"}},
		{"./cmd/scheduler", []string{"--config", "--leader-elect"}},
	} {
		t.Run(c.pkg, func(t *testing.T) {
			bin := buildCommand(t, c.pkg)
			out, err := exec.CommandContext(t.Context(), bin, "--help").CombinedOutput()
			require.NoError(t, err, "%s --help: %s", c.pkg, out)
			for _, f := range c.flags {
				require.Contains(t, string(out), f)
			}
		})
	}
}
