//go:build !unix

package policy

import "time"

func processCPUTime() (time.Duration, bool) { return 0, false }
