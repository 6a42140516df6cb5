// Package configstore holds the live Harbormaster configuration: the last
// document that parsed and validated. A bad document is rejected, logged with
// its field paths and counted, and the last good one keeps serving.
package configstore

import (
	"crypto/sha256"
	"encoding/hex"
	"sync"
	"sync/atomic"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/harbormaster-dev/harbormaster/pkg/config"
)

const defaultRevision = "default"

// Snapshot is one accepted configuration and where it came from.
type Snapshot struct {
	Config *config.Config
	// Revision is a short hash of the document's bytes: decision logs and
	// metrics name the configuration that served them.
	Revision string
}

// Store is safe for concurrent use; readers never block writers.
type Store struct {
	current atomic.Pointer[Snapshot]
	log     logr.Logger
	metrics *Metrics

	mu        sync.Mutex
	lastError error
}

// Metrics are what operators watch about configuration reloads.
type Metrics struct {
	Reloads  *prometheus.CounterVec // result=accepted|rejected
	Revision *prometheus.GaugeVec   // 1 for the serving revision
}

// NewMetrics creates and registers the store's metrics.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "harbormaster_config_reloads_total",
			Help: "Configuration documents seen, by result (accepted or rejected).",
		}, []string{"result"}),
		Revision: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "harbormaster_config_revision_info",
			Help: "Set to 1 for the configuration revision currently serving.",
		}, []string{"revision"}),
	}
	if reg != nil {
		reg.MustRegister(m.Reloads, m.Revision)
	}
	return m
}

// New returns a store serving the defaulted empty configuration until a
// document is accepted. metrics may be nil.
func New(log logr.Logger, metrics *Metrics) *Store {
	if metrics == nil {
		metrics = NewMetrics(nil)
	}
	s := &Store{log: log, metrics: metrics}
	s.current.Store(&Snapshot{Config: config.Default(), Revision: defaultRevision})
	return s
}

// Metrics returns the store's metrics.
func (s *Store) Metrics() *Metrics { return s.metrics }

// Current returns the serving snapshot.
func (s *Store) Current() *Snapshot { return s.current.Load() }

// Update parses and validates a document and swaps it in atomically. On
// error the previous configuration keeps serving and the error (listing
// every invalid field) is returned.
func (s *Store) Update(document []byte) error {
	cfg, err := config.Parse(document)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.lastError = err
		s.metrics.Reloads.WithLabelValues("rejected").Inc()
		s.log.Error(err, "Rejected configuration; the last good one keeps serving", "servingRevision", s.Current().Revision)
		return err
	}
	sum := sha256.Sum256(document)
	next := &Snapshot{Config: cfg, Revision: hex.EncodeToString(sum[:6])}
	prev := s.current.Swap(next)
	s.lastError = nil
	s.metrics.Reloads.WithLabelValues("accepted").Inc()
	if prev.Revision != next.Revision {
		s.metrics.Revision.DeleteLabelValues(prev.Revision)
	}
	s.metrics.Revision.WithLabelValues(next.Revision).Set(1)
	s.log.Info("Configuration accepted", "revision", next.Revision, "previousRevision", prev.Revision)
	return nil
}

// Loaded reports whether a document has been accepted since start. Until
// then the webhook is not ready: serving defaults would confine no tenant.
func (s *Store) Loaded() bool { return s.Current().Revision != defaultRevision }

// LastError is the error of the most recent document if it was rejected.
func (s *Store) LastError() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastError
}
