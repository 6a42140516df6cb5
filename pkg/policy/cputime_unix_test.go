//go:build unix

package policy

import (
	"syscall"
	"time"
)

// processCPUTime is the CPU time (user and system, every thread: the
// garbage collector's work counts) this process has used so far. On a
// shared machine it measures an evaluation's cost more steadily than wall
// time, which includes waiting for the CPU.
func processCPUTime() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
