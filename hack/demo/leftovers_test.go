package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestStopLeftovers: processes a killed demo recorded are stopped by the
// next run; a recorded pid now used by another process is left alone.
func TestStopLeftovers(t *testing.T) {
	leftover := exec.Command("sleep", "60")
	require.NoError(t, leftover.Start())
	t.Cleanup(func() { _ = leftover.Process.Kill(); _ = leftover.Wait() })
	bystander := exec.Command("sleep", "60")
	require.NoError(t, bystander.Start())
	t.Cleanup(func() { _ = bystander.Process.Kill(); _ = bystander.Wait() })

	path := filepath.Join(t.TempDir(), leftoversFile)
	require.NoError(t, recordControlPlane(path))
	recorded, err := os.ReadFile(path)
	require.NoError(t, err)
	_, start, err := procStat(leftover.Process.Pid)
	require.NoError(t, err)
	require.Contains(t, string(recorded), fmt.Sprintf("%d %d\n", leftover.Process.Pid, start), "children are recorded")
	// The bystander's pid "was reused": its recorded start time differs.
	_, bystanderStart, err := procStat(bystander.Process.Pid)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, fmt.Appendf(nil, "%d %d\n%d %d\n", leftover.Process.Pid, start, bystander.Process.Pid, bystanderStart+1), 0o600))

	stopped, err := stopLeftovers(path)
	require.NoError(t, err)
	require.Equal(t, 1, stopped)
	done := make(chan error, 1)
	go func() { done <- leftover.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the leftover was not stopped")
	}
	require.NoError(t, syscall.Kill(bystander.Process.Pid, 0), "the bystander runs on")
	require.NoFileExists(t, path, "the record is consumed")
}
