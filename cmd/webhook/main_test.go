package main

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCollectorSetting(t *testing.T) {
	const limit = 200 << 20
	for _, tc := range []struct {
		name        string
		gcPercent   int
		gogc        string
		memoryLimit int64
		set         bool
		err         string
	}{
		{name: "default", gcPercent: defaultGCPercent, memoryLimit: math.MaxInt64, set: true},
		{name: "off with a memory limit", gcPercent: -1, memoryLimit: limit, set: true},
		{name: "off without a memory limit", gcPercent: -1, memoryLimit: math.MaxInt64, err: "--gc-percent=-1 turns garbage collection off until the heap reaches GOMEMLIMIT, which is not set"},
		{name: "GOGC wins", gcPercent: -1, gogc: "100", memoryLimit: math.MaxInt64, set: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set, err := collectorSetting(tc.gcPercent, tc.gogc, tc.memoryLimit)
			if tc.err != "" {
				require.EqualError(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.set, set)
		})
	}
}
