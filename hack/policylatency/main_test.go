package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const exposition = `# HELP go_gc_duration_seconds A summary of the wall-time pause (stop-the-world) duration in garbage collection cycles.
# TYPE go_gc_duration_seconds summary
go_gc_duration_seconds{quantile="0"} 2.1e-05
go_gc_duration_seconds_sum 0.0123
go_gc_duration_seconds_count 61
# TYPE go_memstats_alloc_bytes_total counter
go_memstats_alloc_bytes_total 8.45745248e+08
# TYPE go_memstats_next_gc_bytes gauge
go_memstats_next_gc_bytes 5.2059608e+07
# TYPE go_memstats_next_gc_bytes_extra gauge
go_memstats_next_gc_bytes_extra 1
`

func TestParseRuntimeStats(t *testing.T) {
	s, err := parseRuntimeStats(strings.NewReader(exposition))
	require.NoError(t, err)
	require.Equal(t, runtimeStats{cycles: 61, allocatedBytes: 845745248, heapGoalBytes: 52059608}, s)

	before := runtimeStats{cycles: 41, allocatedBytes: 845745248 - 3000*246e3}
	require.Equal(t, "webhook process: 20 collection cycles (one per 150 creations), 246 KB allocated per creation, heap goal 52.1 MB",
		s.since(before, 3000))
	require.Contains(t, s.since(s, 10), "0 collection cycles (no cycle)")
}

func TestParseRuntimeStatsErrors(t *testing.T) {
	missing := strings.NewReplacer("go_memstats_next_gc_bytes gauge", "go_memstats_next_gc_bytes_other gauge",
		"go_memstats_next_gc_bytes 5", "go_memstats_next_gc_bytes_other 5").Replace(exposition)
	_, err := parseRuntimeStats(strings.NewReader(missing))
	require.EqualError(t, err, "metric go_memstats_next_gc_bytes missing from -webhook-metrics (is it the webhook's metrics address?)")

	_, err = parseRuntimeStats(strings.NewReader("go_memstats_alloc_bytes_total sixty\n"))
	require.ErrorContains(t, err, "parsing -webhook-metrics")
}
