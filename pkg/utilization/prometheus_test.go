package utilization

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	testingclock "k8s.io/utils/clock/testing"
)

// fakePrometheus serves /api/v1/query like Prometheus: the test maps each
// query to a status code and a response body.
type fakePrometheus struct {
	*httptest.Server
	queries atomic.Int64
}

func newFakePrometheus(t *testing.T, respond func(query string) (int, string)) *fakePrometheus {
	t.Helper()
	f := &fakePrometheus{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/query" {
			http.NotFound(w, r)
			return
		}
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		f.queries.Add(1)
		if timeout := r.Form.Get("timeout"); timeout != "" {
			// Real Prometheus rejects durations it cannot parse.
			if _, err := model.ParseDuration(timeout); err != nil {
				w.WriteHeader(http.StatusBadRequest)
				fmt.Fprintf(w, `{"status":"error","errorType":"bad_data","error":"invalid parameter \"timeout\": %s"}`, err)
				return
			}
		}
		code, body := respond(r.Form.Get("query"))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(f.Close)
	return f
}

// vectorResponse renders a successful instant-vector result. Each series is
// its labels and value; Prometheus encodes values as strings ("NaN" too).
func vectorResponse(at time.Time, series ...string) string {
	ts := float64(at.UnixMilli()) / 1000
	var parts []string
	for _, s := range series {
		labels, value, _ := strings.Cut(s, "=>")
		parts = append(parts, fmt.Sprintf(`{"metric":{%s},"value":[%.3f,%q]}`, labels, ts, value))
	}
	return `{"status":"success","data":{"resultType":"vector","result":[` + strings.Join(parts, ",") + `]}}`
}

const (
	cpuQuery = "cpu_util"
	memQuery = "mem_util"
)

func newTestPrometheusSource(t *testing.T, address string, clk *testingclock.FakeClock) *PrometheusSource {
	t.Helper()
	src, err := NewPrometheusSource(PrometheusConfig{
		Address:    address,
		Queries:    map[Resource]string{CPU: cpuQuery, Memory: memQuery},
		NodeLabels: DefaultPrometheusNodeLabels(),
		Clock:      clk,
	})
	require.NoError(t, err)
	return src
}

func TestPrometheusSourceFetch(t *testing.T) {
	at := t0.Add(-2 * time.Second)
	prom := newFakePrometheus(t, func(q string) (int, string) {
		switch q {
		case cpuQuery:
			return 200, vectorResponse(at,
				`"node":"n1"=>0.25`,
				`"instance":"n2:9100","job":"node"=>0.5`,    // node_exporter style
				`"instance":"[fd00::3]:9100"=>0.75`,         // IPv6 host:port
				`"job":"orphan"=>0.1`,                       // no node label
				`"node":"n1","cpu":"1"=>0.9`,                // second series for n1
				`"node":"n4","instance":"other:9100"=>0.33`, // node label wins
			)
		case memQuery:
			return 200, vectorResponse(at, `"node":"n1"=>0.6`)
		}
		return 400, `{"status":"error","errorType":"bad_data","error":"unknown query"}`
	})
	src := newTestPrometheusSource(t, prom.URL, testingclock.NewFakeClock(t0))

	batch, err := src.Fetch(t.Context())
	require.NoError(t, err)
	assert.Equal(t, map[DropReason]int{DropNoNode: 1, DropDuplicateNode: 1}, batch.Dropped)
	got := map[string]float64{}
	for _, s := range batch.Samples {
		got[string(s.Resource)+"/"+s.Node] = s.Value
		assert.Equal(t, PrometheusSourceName, s.Source)
		assert.WithinDuration(t, at, s.Time, time.Millisecond, "the sample keeps the timestamp Prometheus returned")
	}
	assert.Equal(t, map[string]float64{
		"cpu/n1": 0.25, "cpu/n2": 0.5, "cpu/fd00::3": 0.75, "cpu/n4": 0.33, "memory/n1": 0.6,
	}, got)
}

// Every failure mode of the source ends in unknown (never zero) data for
// the affected nodes, a returned error where the fetch failed, and counted
// drops for unusable samples.
func TestPrometheusSourceFailures(t *testing.T) {
	fresh := t0.Add(-time.Second)
	for _, tc := range []struct {
		name    string
		respond func(q string) (int, string)
		// down points the source at a closed port instead.
		down        bool
		wantErr     string
		wantKnown   map[string]float64 // resource/node -> value after Ingest
		wantDropped map[DropReason]int
	}{
		{
			name: "HTTP 500", wantErr: "server_error",
			respond: func(string) (int, string) {
				return 500, `{"status":"error","errorType":"internal","error":"boom"}`
			},
		},
		{
			name: "HTTP 500 without a JSON body", wantErr: "500",
			respond: func(string) (int, string) { return 500, "upstream exploded" },
		},
		{
			name: "Prometheus down", down: true, wantErr: "connection refused",
		},
		{
			name: "empty result", wantErr: "no series",
			respond: func(string) (int, string) { return 200, vectorResponse(fresh) },
		},
		{
			name: "scalar instead of vector", wantErr: "want a vector",
			respond: func(string) (int, string) {
				return 200, `{"status":"success","data":{"resultType":"scalar","result":[1,"0.5"]}}`
			},
		},
		{
			name: "NaN, negative and over 100% are dropped",
			respond: func(q string) (int, string) {
				if q == cpuQuery {
					return 200, vectorResponse(fresh, `"node":"n1"=>NaN`, `"node":"n2"=>-0.2`, `"node":"n3"=>1.7`, `"node":"n4"=>+Inf`, `"node":"n5"=>0.4`)
				}
				return 200, vectorResponse(fresh, `"node":"n5"=>0.5`)
			},
			wantKnown:   map[string]float64{"cpu/n5": 0.4, "memory/n5": 0.5},
			wantDropped: map[DropReason]int{DropNotANumber: 2, DropNegative: 1, DropOver100Percent: 1},
		},
		{
			name: "stale samples are stored but unknown",
			respond: func(q string) (int, string) {
				return 200, vectorResponse(t0.Add(-10*time.Minute), `"node":"n1"=>0.4`)
			},
			wantKnown: map[string]float64{},
		},
		{
			name: "missing node: series without node label",
			respond: func(q string) (int, string) {
				return 200, vectorResponse(fresh, `"job":"x"=>0.4`, `"node":"n2"=>0.3`)
			},
			wantKnown:   map[string]float64{"cpu/n2": 0.3, "memory/n2": 0.3},
			wantDropped: map[DropReason]int{DropNoNode: 2},
		},
		{
			name: "one query failing keeps the other's samples", wantErr: "memory query",
			respond: func(q string) (int, string) {
				if q == memQuery {
					return 422, `{"status":"error","errorType":"execution","error":"many-to-many matching"}`
				}
				return 200, vectorResponse(fresh, `"node":"n1"=>0.4`)
			},
			wantKnown: map[string]float64{"cpu/n1": 0.4},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			address := "http://127.0.0.1:1" // nothing listens on port 1
			if !tc.down {
				address = newFakePrometheus(t, tc.respond).URL
			}
			clk := testingclock.NewFakeClock(t0)
			src := newTestPrometheusSource(t, address, clk)
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			batch, err := src.Fetch(ctx)
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.wantErr)
			} else {
				require.NoError(t, err)
			}
			store := NewStore(time.Minute, clk)
			dropped := store.Ingest(batch)
			if tc.wantDropped == nil {
				tc.wantDropped = map[DropReason]int{}
			}
			assert.Equal(t, tc.wantDropped, dropped)

			snap := store.Snapshot()
			known := map[string]float64{}
			for _, n := range []string{"n1", "n2", "n3", "n4", "n5"} {
				for _, r := range Resources() {
					if s, ok := snap.Get(n, r); ok {
						known[string(r)+"/"+n] = s.Value
					}
				}
			}
			if tc.wantKnown == nil {
				tc.wantKnown = map[string]float64{}
			}
			assert.Equal(t, tc.wantKnown, known)
		})
	}
}

func TestPrometheusSourceHonoursContext(t *testing.T) {
	release := make(chan struct{})
	prom := newFakePrometheus(t, func(string) (int, string) {
		<-release
		return 200, vectorResponse(t0, `"node":"n1"=>0.4`)
	})
	defer close(release)
	src := newTestPrometheusSource(t, prom.URL, testingclock.NewFakeClock(t0))
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := src.Fetch(ctx)
	require.Error(t, err)
	assert.Less(t, time.Since(start), 3*time.Second, "a hung Prometheus must not hold the refresher past its timeout")
}

func TestNewPrometheusSourceRejectsBadConfig(t *testing.T) {
	_, err := NewPrometheusSource(PrometheusConfig{Address: "http://p:9090", NodeLabels: []string{"node"}})
	assert.Error(t, err)
	_, err = NewPrometheusSource(PrometheusConfig{Address: "http://p:9090", Queries: map[Resource]string{CPU: "x"}})
	assert.Error(t, err)
	_, err = NewPrometheusSource(PrometheusConfig{Address: "://bad", Queries: map[Resource]string{CPU: "x"}, NodeLabels: []string{"node"}})
	assert.Error(t, err)
}

func TestQueryTimeoutIsAPrometheusDuration(t *testing.T) {
	for _, d := range []time.Duration{
		499971097 * time.Nanosecond, 1500 * time.Millisecond, 5 * time.Second, 90*time.Second + 7*time.Millisecond, time.Millisecond,
	} {
		got := queryTimeout(d)
		_, err := model.ParseDuration(got.String())
		assert.NoError(t, err, "%v -> %v", d, got)
		assert.LessOrEqual(t, got, d)
	}
	assert.Zero(t, queryTimeout(500*time.Microsecond))
}
