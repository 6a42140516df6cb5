package utilization

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
)

// Source fetches the current utilisation of nodes. Fetch may return a
// partial batch together with an error (one query of several failed); the
// batch is stored and the error counted.
type Source interface {
	// Name labels the source's samples and metrics, e.g. "prometheus".
	Name() string
	Fetch(ctx context.Context) (Batch, error)
}

// SourceSpec is a source and how often to refresh it.
type SourceSpec struct {
	Source Source
	// Interval between the starts of two fetches.
	Interval time.Duration
	// Timeout bounds one fetch; it should be below Interval.
	Timeout time.Duration
}

// PipelineOptions configures NewPipeline.
type PipelineOptions struct {
	// Window is how long a sample stays known after its timestamp.
	Window  time.Duration
	Sources []SourceSpec
	// Registerer receives the pipeline's own metrics; nil keeps them
	// unexported.
	Registerer prometheus.Registerer
	// Nodes lists the cluster's nodes (from an informer cache, never the
	// network) for the nodes-without-data metric; nil omits that metric.
	Nodes func() ([]*corev1.Node, error)
	// Resources are those the consumer needs, for nodes-without-data.
	Resources []Resource
	Clock     clock.WithTicker
}

// Pipeline runs one refresher per source into a shared Store.
type Pipeline struct {
	store   *Store
	sources []SourceSpec
	metrics *pipelineMetrics
	clock   clock.WithTicker

	mu      sync.Mutex
	cancel  context.CancelFunc
	stopped bool
	wg      sync.WaitGroup
}

// NewPipeline validates the options and registers the pipeline's metrics.
// Nothing runs until Start.
func NewPipeline(opts PipelineOptions) (*Pipeline, error) {
	if opts.Window <= 0 {
		return nil, fmt.Errorf("window must be positive, got %v", opts.Window)
	}
	names := map[string]bool{}
	for i, s := range opts.Sources {
		if s.Source == nil || s.Interval <= 0 || s.Timeout <= 0 {
			return nil, fmt.Errorf("source %d: needs a source, a positive interval and a positive timeout", i)
		}
		if names[s.Source.Name()] {
			return nil, fmt.Errorf("source %q configured twice", s.Source.Name())
		}
		names[s.Source.Name()] = true
	}
	clk := opts.Clock
	if clk == nil {
		clk = clock.RealClock{}
	}
	p := &Pipeline{store: NewStore(opts.Window, clk), sources: opts.Sources, clock: clk}
	p.metrics = newPipelineMetrics(p.store.Snapshot, opts.Nodes, opts.Resources)
	for _, s := range opts.Sources {
		// Export a zero before the first failure so rate() and alerts work.
		p.metrics.fetchErrors.WithLabelValues(s.Source.Name())
	}
	if err := p.metrics.register(opts.Registerer); err != nil {
		return nil, fmt.Errorf("registering utilisation metrics: %w", err)
	}
	return p, nil
}

// NewPluginPipeline is NewPipeline for a scheduler plugin. The metrics go
// to reg (nil: not exported) labelled with the plugin's profile and name,
// so each plugin's pipeline in a profile exports its own series. When the
// series are registered already (another scheduler in this process, as in
// tests), the pipeline runs without exporting: scheduling never depends on
// metrics.
func NewPluginPipeline(logger klog.Logger, opts PipelineOptions, reg prometheus.Registerer, profile, plugin string) (*Pipeline, error) {
	if reg != nil {
		opts.Registerer = prometheus.WrapRegistererWith(prometheus.Labels{"profile": profile, "plugin": plugin}, reg)
	}
	p, err := NewPipeline(opts)
	var already prometheus.AlreadyRegisteredError
	if errors.As(err, &already) {
		logger.Info("Utilisation metrics already registered by another instance; not exporting this instance's", "plugin", plugin, "profile", profile)
		opts.Registerer = nil
		return NewPipeline(opts)
	}
	return p, err
}

// Snapshot returns the current view of every source's samples.
func (p *Pipeline) Snapshot() Snapshot { return p.store.Snapshot() }

// Store is the pipeline's store, for consumers that ingest samples of their
// own.
func (p *Pipeline) Store() *Store { return p.store }

// Start launches one refresher goroutine per source. Each fetches at once,
// then every interval, until ctx is done or Stop is called; either one
// also unregisters the metrics.
func (p *Pipeline) Start(ctx context.Context) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped || p.cancel != nil {
		return
	}
	ctx, p.cancel = context.WithCancel(ctx)
	for _, spec := range p.sources {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.run(ctx, spec)
		}()
	}
	// The context ending is a full stop, metrics included: a consumer may
	// never get to call Stop (kube-scheduler closes plugins only on a
	// replica that led).
	go func() {
		<-ctx.Done()
		p.Stop()
	}()
}

// Stop ends the refreshers, waits for them and unregisters the metrics. It
// is idempotent.
func (p *Pipeline) Stop() {
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		return
	}
	p.stopped = true
	if p.cancel != nil {
		p.cancel()
	}
	p.mu.Unlock()
	p.wg.Wait()
	p.metrics.unregister()
}

func (p *Pipeline) run(ctx context.Context, spec SourceSpec) {
	logger := klog.FromContext(ctx).WithValues("source", spec.Source.Name())
	ticker := p.clock.NewTicker(spec.Interval)
	defer ticker.Stop()
	failing := false
	for {
		err := p.Refresh(ctx, spec)
		switch {
		case err != nil && !failing:
			// Errors repeat every interval while a source is down: log the
			// transition loudly and the repeats only at high verbosity.
			logger.Error(err, "Utilisation source failing; affected nodes turn neutral once their samples are older than the window", "window", p.store.Window())
		case err != nil:
			logger.V(4).Info("Utilisation source still failing", "err", err)
		case failing:
			logger.Info("Utilisation source recovered")
		}
		failing = err != nil
		select {
		case <-ctx.Done():
			return
		case <-ticker.C():
		}
	}
}

// Refresh fetches one source once and stores what it returned. Run calls
// it on a ticker; tests call it directly.
func (p *Pipeline) Refresh(ctx context.Context, spec SourceSpec) error {
	name := spec.Source.Name()
	fetchCtx, cancel := context.WithTimeout(ctx, spec.Timeout)
	defer cancel()
	batch, err := spec.Source.Fetch(fetchCtx)
	p.metrics.countDropped(name, p.store.Ingest(batch))
	if err != nil {
		if errors.Is(ctx.Err(), context.Canceled) {
			return nil // shutting down, not a source failure
		}
		p.metrics.fetchErrors.WithLabelValues(name).Inc()
		return err
	}
	p.metrics.lastSuccess.WithLabelValues(name).Set(float64(p.clock.Now().UnixNano()) / 1e9)
	return nil
}
