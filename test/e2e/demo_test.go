package e2e

import (
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/harbormaster-dev/harbormaster/test/framework"
)

// TestDemoRuns runs the README's main job end to end (`make demo` without
// waiting for Ctrl-C) and checks its report: every escape attempt denied,
// the batch job overcommitted by its host group's ratio, the big-data job on
// its dedicated pool, no pod on the hot node, and the live ratio change.
func TestDemoRuns(t *testing.T) {
	bin := buildCommand(t, "./hack/demo")
	cmd := exec.CommandContext(t.Context(), bin, "--exit-after=1s", "--state-dir="+t.TempDir())
	root, err := framework.RepoRoot()
	require.NoError(t, err)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	report := string(out)
	require.NoError(t, err, "demo:\n%s", report)

	require.Equal(t, 5, strings.Count(report, "  DENIED  "), report)
	require.Regexp(t, regexp.MustCompile(`nightly-report-\S+\s+4 -> 1\s`), report, "batch group cpu ratio 4")
	require.Regexp(t, regexp.MustCompile(`spark-etl-\S+\s.*pool bigdata-a\s+bigdata-\d`), report)
	require.Regexp(t, regexp.MustCompile(`training\s.*\sgpu-\d`), report)
	require.NotRegexp(t, regexp.MustCompile(`\sgeneral-0\s+\d+ cpu=`), report, "the hot node (93%% cpu) is filtered")
	require.Regexp(t, regexp.MustCompile(`web-after-edit: cpu 2 -> 500m`), report, "the live ratio change applies to the next pod")
	require.Contains(t, report, "Stopping every process")
}
