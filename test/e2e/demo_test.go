package e2e

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/harbormaster-dev/harbormaster/test/framework"
)

// TestDemoRuns runs the README's main job end to end (`make demo` without
// waiting for Ctrl-C) and checks its report: every escape attempt denied,
// the batch job overcommitted by its host group's ratio, the big-data job on
// its dedicated pool, no pod on the hot node, the live ratio change, nodes
// Ready and pods Running under kwok, the DCGM metrics scraped, and that no
// process or port outlives the demo.
func TestDemoRuns(t *testing.T) {
	bin := buildCommand(t, "./hack/demo")
	// Every process the demo starts inherits its environment, so this
	// variable finds any that outlives it, however it was started.
	marker := fmt.Sprintf("HARBORMASTER_DEMO_RUN=%d", time.Now().UnixNano())
	cmd := exec.CommandContext(t.Context(), bin, "--exit-after=1s", "--state-dir="+t.TempDir())
	cmd.Env = append(os.Environ(), marker)
	root, err := framework.RepoRoot()
	require.NoError(t, err)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	report := string(out)
	require.NoError(t, err, "demo:\n%s", report)

	require.Equal(t, 5, strings.Count(report, "  DENIED  "), report)
	require.Regexp(t, regexp.MustCompile(`nightly-report-\S+\s+4 -> 1\s`), report, "batch group cpu ratio 4")
	require.Regexp(t, regexp.MustCompile(`spark-etl-\S+\s.*pool bigdata-a\s+bigdata-\d\s`), report)
	require.Regexp(t, regexp.MustCompile(`training\s.*\sgpu-\d\s+Running\s+gpu cards \d,\d,\d,\d`), report, "whole GPUs get card indices")
	require.Len(t, regexp.MustCompile(`inference-\d\s.*\sgpu-\d\s+Running\s+gpu cards \d:250`).FindAllString(report, -1), 2, "shared GPUs get a card and a share")
	require.NotRegexp(t, regexp.MustCompile(`\sgeneral-0\s+(Pending|Running|Succeeded)\s`), report, "the hot node (93%% cpu) is filtered")
	require.Regexp(t, regexp.MustCompile(`web-after-edit: cpu 2 -> 500m`), report, "the live ratio change applies to the next pod")

	// kwok plays the kubelets: the 10 sample pods run, the 9 nodes are
	// Ready with kwok's kubelet version.
	require.Len(t, regexp.MustCompile(`(?m)^  team-\S+\s.*\s(general|batch|bigdata|gpu)-\d\s+Running\s`).FindAllString(report, -1), 10, report)
	require.Len(t, regexp.MustCompile(`(?m)^  \S+-\d\s.*\sReady\s+kwok-`).FindAllString(report, -1), 9, report)
	require.Contains(t, report, "DCGM_FI_DEV_GPU_UTIL", "the summary names the scraped DCGM metrics")

	require.Contains(t, report, "Stopping every process")
	require.Empty(t, processesWithEnv(t, marker), "processes started by the demo outlived it")
	// Every address the summary printed (API server, webhook, scheduler,
	// Prometheus) is free again.
	addrs := regexp.MustCompile(`127\.0\.0\.1:\d+`).FindAllString(report, -1)
	require.GreaterOrEqual(t, len(addrs), 5, report)
	for _, addr := range addrs {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			_ = c.Close()
			t.Errorf("%s still accepts connections after the demo", addr)
		}
	}
}

// processesWithEnv lists the running processes whose environment holds
// the entry env ("NAME=value"), as "pid: command line".
func processesWithEnv(t *testing.T, env string) []string {
	t.Helper()
	environs, err := filepath.Glob("/proc/[0-9]*/environ")
	require.NoError(t, err)
	var found []string
	for _, path := range environs {
		data, err := os.ReadFile(path)
		if err != nil {
			continue // exited meanwhile, or not ours to read
		}
		// NUL-separated entries; pad both ends so every entry is
		// enclosed.
		padded := append(append([]byte{0}, data...), 0)
		if !bytes.Contains(padded, []byte("\x00"+env+"\x00")) {
			continue
		}
		dir := filepath.Dir(path)
		cmdline, _ := os.ReadFile(filepath.Join(dir, "cmdline"))
		found = append(found, filepath.Base(dir)+": "+strings.ReplaceAll(string(cmdline), "\x00", " "))
	}
	return found
}
