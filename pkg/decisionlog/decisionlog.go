// Package decisionlog writes one JSON line per admission policy decision,
// for auditors: who asked for what, which bundle and configuration judged
// it, which rules fired and what happened.
//
// What is never logged: the object itself. A line carries a reference to
// the object (apiVersion, kind, namespace, name or generateName, request
// uid, operation, subresource) and the policies' messages, nothing of its
// content. Because a policy message could still quote a value from the
// object, every env var value of the request's objects (and the data of a
// Secret) is replaced by "[REDACTED]" in messages and errors before
// writing.
//
// Writes are synchronous, small and local (stdout, a file): a failed write
// is counted in harbormaster_decision_log_write_errors_total and never
// returned to the admission path.
package decisionlog

import (
	"encoding/json"
	"io"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admission/v1"
)

// Result is the strongest effective action of a decision.
type Result string

const (
	ResultAllow  Result = "allow"
	ResultDeny   Result = "deny"
	ResultWarn   Result = "warn"
	ResultDryRun Result = "dryrun"
	// resultUnknown marks an entry whose caller set no result: visible in
	// logs and metrics instead of passing for an allow.
	resultUnknown Result = "unknown"
)

// User is who sent the request.
type User struct {
	Username string   `json:"username"`
	Groups   []string `json:"groups"`
}

// ObjectRef identifies the object of a request without any of its content.
type ObjectRef struct {
	APIVersion   string `json:"apiVersion"`
	Kind         string `json:"kind"`
	Namespace    string `json:"namespace,omitempty"`
	Name         string `json:"name,omitempty"`
	GenerateName string `json:"generateName,omitempty"`
	// UID is the admission request's uid, which the API server's audit log
	// also records.
	UID         string `json:"uid"`
	Operation   string `json:"operation"`
	SubResource string `json:"subResource,omitempty"`
	// DryRun is the request's own dryRun flag (kubectl --dry-run=server),
	// unrelated to dryrun enforcement.
	DryRun bool `json:"dryRun,omitempty"`
}

// Entry is one decision as the caller knows it; the logger adds its id and
// time.
type Entry struct {
	BundleRevision string
	ConfigRevision string
	// Tenant is the namespace's tenant, "" for none.
	Tenant   string
	User     User
	Object   ObjectRef
	Result   Result
	RuleIDs  []string
	Messages []string
	// Error is why the policies could not judge the request, if so; Result
	// then records what the failure policy did.
	Error   string
	Latency time.Duration
	// Secrets are extra values to redact from Messages and Error.
	Secrets []string

	// sources are the raw objects of the request, read for secrets only
	// when there is text to redact.
	sources [][]byte
}

// FromRequest fills the user, the object reference and the redaction
// sources of an entry from an admission request.
func FromRequest(req *admissionv1.AdmissionRequest) Entry {
	if req == nil {
		return Entry{}
	}
	apiVersion := req.Kind.Version
	if req.Kind.Group != "" {
		apiVersion = req.Kind.Group + "/" + req.Kind.Version
	}
	e := Entry{
		User: User{Username: req.UserInfo.Username, Groups: req.UserInfo.Groups},
		Object: ObjectRef{
			APIVersion:  apiVersion,
			Kind:        req.Kind.Kind,
			Namespace:   req.Namespace,
			Name:        req.Name,
			UID:         string(req.UID),
			Operation:   string(req.Operation),
			SubResource: req.SubResource,
			DryRun:      req.DryRun != nil && *req.DryRun,
		},
	}
	if e.Object.Name == "" {
		// A CREATE of a generated name carries it only in the object.
		var meta struct {
			Metadata struct {
				GenerateName string `json:"generateName"`
			} `json:"metadata"`
		}
		if json.Unmarshal(req.Object.Raw, &meta) == nil {
			e.Object.GenerateName = meta.Metadata.GenerateName
		}
	}
	for _, raw := range [][]byte{req.Object.Raw, req.OldObject.Raw} {
		if len(raw) > 0 {
			e.sources = append(e.sources, raw)
		}
	}
	return e
}

// line is the JSON shape of a log line.
type line struct {
	DecisionID     string    `json:"decision_id"`
	Time           string    `json:"time"`
	BundleRevision string    `json:"bundle_revision"`
	ConfigRevision string    `json:"config_revision"`
	Result         Result    `json:"result"`
	RuleIDs        []string  `json:"rule_ids"`
	Tenant         string    `json:"tenant"`
	User           User      `json:"user"`
	Object         ObjectRef `json:"object"`
	Messages       []string  `json:"messages"`
	Error          string    `json:"error,omitempty"`
	LatencyMS      float64   `json:"latency_ms"`
}

// Metrics are the decision counters operators watch.
type Metrics struct {
	// Decisions counts decisions by result, logged or not.
	Decisions *prometheus.CounterVec
	// WriteErrors counts failed writes to any sink.
	WriteErrors prometheus.Counter
}

// NewMetrics creates the metrics and registers them with reg, if not nil.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "harbormaster_policy_decisions_total",
			Help: "Admission policy decisions, by strongest effective result (allow, deny, warn, dryrun).",
		}, []string{"result"}),
		WriteErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "harbormaster_decision_log_write_errors_total",
			Help: "Decision log lines that could not be written to a sink.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.Decisions, m.WriteErrors)
	}
	return m
}

// FileOptions configure the rotating file sink.
type FileOptions struct {
	Path string
	// MaxBytes is the size at which the file rotates; 0 means
	// DefaultMaxBytes.
	MaxBytes int64
	// MaxBackups is how many rotated files (path.1 newest ... path.N) are
	// kept; 0 keeps none.
	MaxBackups int
}

// Options configure a Logger.
type Options struct {
	// Writer receives every line, typically os.Stdout; nil for none.
	Writer io.Writer
	// File, if set, also writes to a size-rotated file.
	File *FileOptions
	// Metrics; nil means unregistered ones.
	Metrics *Metrics
	// Now and NewID are for tests; they default to time.Now and random
	// UUIDs.
	Now   func() time.Time
	NewID func() string
}

// Logger writes decision lines. It is safe for concurrent use.
type Logger struct {
	now     func() time.Time
	newID   func() string
	metrics *Metrics

	mu    sync.Mutex // serialises lines across sinks
	sinks []io.Writer
	file  *RotatingFile
}

// New returns a logger; it opens the file sink, if any.
func New(opts Options) (*Logger, error) {
	l := &Logger{now: opts.Now, newID: opts.NewID, metrics: opts.Metrics}
	if l.now == nil {
		l.now = time.Now
	}
	if l.newID == nil {
		l.newID = uuid.NewString
	}
	if l.metrics == nil {
		l.metrics = NewMetrics(nil)
	}
	if opts.Writer != nil {
		l.sinks = append(l.sinks, opts.Writer)
	}
	if opts.File != nil {
		f, err := OpenRotatingFile(opts.File.Path, opts.File.MaxBytes, opts.File.MaxBackups)
		if err != nil {
			return nil, err
		}
		l.file = f
		l.sinks = append(l.sinks, f)
	}
	return l, nil
}

// Metrics returns the logger's metrics.
func (l *Logger) Metrics() *Metrics { return l.metrics }

// Log writes one line for e and returns its decision id, which the webhook
// may also put in the admission response's audit annotations. It never
// fails: write errors are counted.
func (l *Logger) Log(e Entry) string {
	result := e.Result
	if result == "" {
		result = resultUnknown
	}
	l.metrics.Decisions.WithLabelValues(string(result)).Inc()

	messages, errText := redact(e)
	ln := line{
		DecisionID:     l.newID(),
		Time:           l.now().UTC().Format(time.RFC3339Nano),
		BundleRevision: e.BundleRevision,
		ConfigRevision: e.ConfigRevision,
		Result:         result,
		RuleIDs:        nonNil(e.RuleIDs),
		Tenant:         e.Tenant,
		User:           User{Username: e.User.Username, Groups: nonNil(e.User.Groups)},
		Object:         e.Object,
		Messages:       nonNil(messages),
		Error:          errText,
		// Microsecond precision is plenty and keeps lines short.
		LatencyMS: math.Round(float64(e.Latency)/float64(time.Microsecond)) / 1000,
	}
	data, err := json.Marshal(ln)
	if err != nil {
		l.metrics.WriteErrors.Inc()
		return ln.DecisionID
	}
	data = append(data, '\n')

	l.mu.Lock()
	defer l.mu.Unlock()
	for _, w := range l.sinks {
		if _, err := w.Write(data); err != nil {
			l.metrics.WriteErrors.Inc()
		}
	}
	return ln.DecisionID
}

// Close closes the file sink; the Writer is the caller's.
func (l *Logger) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.file == nil {
		return nil
	}
	err := l.file.Close()
	l.sinks = slices.DeleteFunc(l.sinks, func(w io.Writer) bool { return w == io.Writer(l.file) })
	l.file = nil
	return err
}

// nonNil makes an empty list a JSON [] rather than null, so that log
// queries need not care.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
