package stack

import (
	"os"
	"os/exec"
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/require"
)

// Grow reaches the depth it asks for, and no deeper than a stack of twice
// that: with the goroutine stack capped at 256 KiB growing by 128 KiB
// runs, and with it capped at 64 KiB it overflows (in a child process: a
// stack overflow is fatal), which also shows the compiler kept the frames.
func TestGrow(t *testing.T) {
	if limit := os.Getenv("STACK_TEST_MAX"); limit != "" {
		max := 256 << 10
		if limit == "small" {
			max = 64 << 10
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			debug.SetMaxStack(max)
			Grow(128 << 10)
		}()
		<-done
		return
	}
	run := func(limit string) ([]byte, error) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestGrow$")
		cmd.Env = append(os.Environ(), "STACK_TEST_MAX="+limit)
		return cmd.CombinedOutput()
	}
	out, err := run("large")
	require.NoError(t, err, "%s", out)
	out, err = run("small")
	require.Error(t, err)
	require.Contains(t, string(out), "stack exceeds")
}

func BenchmarkGrowFreshGoroutine(b *testing.B) {
	for b.Loop() {
		done := make(chan struct{})
		go func() { Grow(128 << 10); close(done) }()
		<-done
	}
}
