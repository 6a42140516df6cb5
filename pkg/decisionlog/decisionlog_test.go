package decisionlog

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

const secretValue = "s3cr3t"

var fixedTime = time.Date(2026, 3, 1, 12, 30, 45, 123456789, time.FixedZone("CET", 3600))

func podJSON(envValue string) string {
	return `{"apiVersion":"v1","kind":"Pod","metadata":{"generateName":"web-7d9f-","namespace":"team-a-dev",
		"annotations":{"internal/notes":"object-content-marker"}},
		"spec":{"containers":[{"name":"web","image":"registry.example.com/web:1.0",
		"env":[{"name":"LOG_LEVEL","value":"info"},{"name":"API_TOKEN","value":"` + envValue + `"}]}]}}`
}

func request(kind metav1.GroupVersionKind, name string, object, oldObject string) *admissionv1.AdmissionRequest {
	req := &admissionv1.AdmissionRequest{
		UID:       "7c1e9a52-0000-4000-8000-000000000001",
		Kind:      kind,
		Namespace: "team-a-dev",
		Name:      name,
		Operation: admissionv1.Create,
		UserInfo:  authenticationv1.UserInfo{Username: "alice@example.com", Groups: []string{"team-a", "system:authenticated"}},
	}
	if object != "" {
		req.Object = runtime.RawExtension{Raw: []byte(object)}
	}
	if oldObject != "" {
		req.OldObject = runtime.RawExtension{Raw: []byte(oldObject)}
	}
	return req
}

var podKind = metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}

func newTestLogger(t *testing.T, w *bytes.Buffer) (*Logger, *Metrics) {
	t.Helper()
	m := NewMetrics(prometheus.NewRegistry())
	l, err := New(Options{Writer: w, Metrics: m, Now: func() time.Time { return fixedTime }, NewID: func() string { return "d-1" }})
	require.NoError(t, err)
	return l, m
}

func TestLogLineShape(t *testing.T) {
	var buf bytes.Buffer
	l, m := newTestLogger(t, &buf)

	e := FromRequest(request(podKind, "", podJSON(secretValue), ""))
	e.BundleRevision, e.ConfigRevision, e.Tenant = "0123456789ab", "cfg-42", "team-a"
	e.Result = ResultDeny
	e.RuleIDs = []string{"HM-HG-001"}
	e.Messages = []string{"[HM-HG-001] pod pins node n1"}
	e.Latency = 1234567 * time.Nanosecond
	require.Equal(t, "d-1", l.Log(e))

	require.True(t, strings.HasSuffix(buf.String(), "}\n"))
	require.Equal(t, 1, strings.Count(buf.String(), "\n"))
	var got map[string]any
	require.NoError(t, json.Unmarshal(buf.Bytes(), &got))
	require.Equal(t, map[string]any{
		"decision_id":     "d-1",
		"time":            "2026-03-01T11:30:45.123456789Z",
		"bundle_revision": "0123456789ab",
		"config_revision": "cfg-42",
		"result":          "deny",
		"rule_ids":        []any{"HM-HG-001"},
		"tenant":          "team-a",
		"user":            map[string]any{"username": "alice@example.com", "groups": []any{"team-a", "system:authenticated"}},
		"object": map[string]any{
			"apiVersion": "v1", "kind": "Pod", "namespace": "team-a-dev", "generateName": "web-7d9f-",
			"uid": "7c1e9a52-0000-4000-8000-000000000001", "operation": "CREATE",
		},
		"messages":   []any{"[HM-HG-001] pod pins node n1"},
		"latency_ms": 1.235,
	}, got)

	require.Equal(t, 1.0, testutil.ToFloat64(m.Decisions.WithLabelValues("deny")))
	require.Zero(t, testutil.ToFloat64(m.WriteErrors))
}

func TestLogEmptyListsAndUnknownResult(t *testing.T) {
	var buf bytes.Buffer
	l, m := newTestLogger(t, &buf)
	l.Log(Entry{})
	var got map[string]any
	require.NoError(t, json.Unmarshal(buf.Bytes(), &got))
	require.Equal(t, []any{}, got["rule_ids"])
	require.Equal(t, []any{}, got["messages"])
	require.Equal(t, []any{}, got["user"].(map[string]any)["groups"])
	require.Equal(t, "unknown", got["result"])
	require.NotContains(t, got, "error")
	require.Equal(t, 1.0, testutil.ToFloat64(m.Decisions.WithLabelValues("unknown")))
}

func TestFromRequest(t *testing.T) {
	dryRun := true
	tests := []struct {
		name string
		req  *admissionv1.AdmissionRequest
		want ObjectRef
	}{
		{
			name: "core pod with generated name",
			req:  request(podKind, "", podJSON("x"), ""),
			want: ObjectRef{APIVersion: "v1", Kind: "Pod", Namespace: "team-a-dev", GenerateName: "web-7d9f-", UID: "7c1e9a52-0000-4000-8000-000000000001", Operation: "CREATE"},
		},
		{
			name: "named deployment keeps its name, not generateName",
			req:  request(metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}, "web", `{"metadata":{"generateName":"ignored-"}}`, ""),
			want: ObjectRef{APIVersion: "apps/v1", Kind: "Deployment", Namespace: "team-a-dev", Name: "web", UID: "7c1e9a52-0000-4000-8000-000000000001", Operation: "CREATE"},
		},
		{
			name: "subresource, server dry run, no object",
			req: func() *admissionv1.AdmissionRequest {
				r := request(podKind, "web-1", "", "")
				r.SubResource, r.Operation, r.DryRun = "binding", admissionv1.Update, &dryRun
				return r
			}(),
			want: ObjectRef{APIVersion: "v1", Kind: "Pod", Namespace: "team-a-dev", Name: "web-1", UID: "7c1e9a52-0000-4000-8000-000000000001", Operation: "UPDATE", SubResource: "binding", DryRun: true},
		},
		{
			name: "nil request",
			want: ObjectRef{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, FromRequest(tt.req).Object)
		})
	}
}

func TestRedaction(t *testing.T) {
	deployment := `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},"spec":{"template":{"spec":
		{"initContainers":[{"name":"init","env":[{"name":"SEED","value":"` + secretValue + `"}]}],"containers":[]}}}}`
	secret := `{"apiVersion":"v1","kind":"Secret","metadata":{"name":"db"},"data":{"password":"` +
		base64.StdEncoding.EncodeToString([]byte(secretValue)) + `"},"stringData":{"token":"` + secretValue + `-2"}}`

	tests := []struct {
		name      string
		req       *admissionv1.AdmissionRequest
		extra     []string
		messages  []string
		err       string
		mustNot   []string
		mustStill []string
	}{
		{
			name:      "pod env value quoted by a policy",
			req:       request(podKind, "", podJSON(secretValue), ""),
			messages:  []string{"env API_TOKEN=" + secretValue + " looks like a credential"},
			mustNot:   []string{secretValue, "object-content-marker", "registry.example.com"},
			mustStill: []string{"env API_TOKEN=[REDACTED] looks like a credential"},
		},
		{
			name:     "pod template of a deployment",
			req:      request(metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}, "web", deployment, ""),
			messages: []string{"init container sets SEED to " + secretValue},
			mustNot:  []string{secretValue},
		},
		{
			name:     "old object of an update",
			req:      request(podKind, "web-1", "", podJSON(secretValue)),
			messages: []string{"was " + secretValue},
			mustNot:  []string{secretValue},
		},
		{
			name: "secret data, encoded and decoded, and stringData",
			req:  request(metav1.GroupVersionKind{Version: "v1", Kind: "Secret"}, "db", secret, ""),
			messages: []string{
				"password " + secretValue,
				"encoded " + base64.StdEncoding.EncodeToString([]byte(secretValue)),
				"token " + secretValue + "-2",
			},
			mustNot:   []string{secretValue, base64.StdEncoding.EncodeToString([]byte(secretValue))},
			mustStill: []string{"token [REDACTED]"},
		},
		{
			name:    "evaluation error text",
			req:     request(podKind, "", podJSON(secretValue), ""),
			err:     `units.parse: could not parse "` + secretValue + `"`,
			mustNot: []string{secretValue},
		},
		{
			name:      "caller-supplied secrets",
			req:       request(podKind, "", podJSON("unrelated"), ""),
			extra:     []string{"hunter22"},
			messages:  []string{"password hunter22"},
			mustNot:   []string{"hunter22"},
			mustStill: []string{"password [REDACTED]"},
		},
		{
			name:      "short values are not treated as secrets",
			req:       request(podKind, "", podJSON("on"), ""),
			messages:  []string{"feature flag is on"},
			mustStill: []string{"feature flag is on"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			l, _ := newTestLogger(t, &buf)
			e := FromRequest(tt.req)
			e.Result, e.Messages, e.Error, e.Secrets = ResultDeny, tt.messages, tt.err, tt.extra
			l.Log(e)
			out := buf.String()
			for _, s := range tt.mustNot {
				require.NotContains(t, out, s)
			}
			for _, s := range tt.mustStill {
				require.Contains(t, out, s)
			}
			require.True(t, json.Valid(buf.Bytes()))
		})
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk on fire") }

func TestWriteErrorsAreCountedNotReturned(t *testing.T) {
	m := NewMetrics(prometheus.NewRegistry())
	path := filepath.Join(t.TempDir(), "decisions.log")
	l, err := New(Options{Writer: failingWriter{}, File: &FileOptions{Path: path}, Metrics: m})
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })

	id := l.Log(Entry{Result: ResultAllow})
	require.NotEmpty(t, id)
	require.Equal(t, 1.0, testutil.ToFloat64(m.WriteErrors))
	require.Equal(t, 1.0, testutil.ToFloat64(m.Decisions.WithLabelValues("allow")))
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Contains(t, string(data), id, "the healthy sink still gets the line")
}

func TestMetricsRegistration(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	m.Decisions.WithLabelValues("warn").Inc()
	families, err := reg.Gather()
	require.NoError(t, err)
	var names []string
	for _, f := range families {
		names = append(names, f.GetName())
	}
	require.ElementsMatch(t, []string{"harbormaster_policy_decisions_total", "harbormaster_decision_log_write_errors_total"}, names)
	require.Panics(t, func() { NewMetrics(reg) }, "a second registration is a programming error")
}

// lockedBuffer lets the test read what concurrent writers produced.
type lockedBuffer struct {
	mu sync.Mutex
	bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Buffer.Write(p)
}

func TestConcurrentWriters(t *testing.T) {
	const writers, perWriter = 8, 200
	var out lockedBuffer
	dir := t.TempDir()
	path := filepath.Join(dir, "decisions.log")
	m := NewMetrics(prometheus.NewRegistry())
	l, err := New(Options{Writer: &out, File: &FileOptions{Path: path, MaxBytes: 64 << 10, MaxBackups: 100}, Metrics: m})
	require.NoError(t, err)

	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				e := FromRequest(request(podKind, "", podJSON(secretValue), ""))
				e.Result = ResultWarn
				e.Messages = []string{fmt.Sprintf("writer %d line %d quotes %s", w, i, secretValue)}
				l.Log(e)
			}
		})
	}
	wg.Wait()
	require.NoError(t, l.Close())

	ids := map[string]bool{}
	scanner := bufio.NewScanner(bytes.NewReader(out.Bytes()))
	for scanner.Scan() {
		var ln line
		require.NoError(t, json.Unmarshal(scanner.Bytes(), &ln), "lines never interleave")
		require.False(t, ids[ln.DecisionID], "decision ids are unique")
		ids[ln.DecisionID] = true
		require.NotContains(t, ln.Messages[0], secretValue)
	}
	require.Len(t, ids, writers*perWriter)
	require.Equal(t, float64(writers*perWriter), testutil.ToFloat64(m.Decisions.WithLabelValues("warn")))

	// The file and its backups hold the same lines.
	files, err := filepath.Glob(path + "*")
	require.NoError(t, err)
	require.Greater(t, len(files), 1, "rotation happened")
	var fileLines int
	for _, f := range files {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, l := range bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n")) {
			require.True(t, json.Valid(l), "%s holds a split line", f)
			fileLines++
		}
	}
	require.Equal(t, writers*perWriter, fileLines)
}
