package gpu

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	v1 "k8s.io/api/core/v1"
	"k8s.io/utils/clock"

	"github.com/harbormaster-dev/harbormaster/pkg/utilization"
)

// DCGMSourceName labels samples and metrics of the DCGM source.
const DCGMSourceName = "dcgm"

// Per-card utilisation is stored in the utilisation pipeline's store under
// one resource per card and measure, so it shares the store's freshness
// rules (a sample older than the window is unknown) and metrics.
const (
	measureUtil = "util" // fraction of time the card was busy
	measureFB   = "fb"   // fraction of the framebuffer in use
)

// cardResource names a card's measure in the store, e.g. "gpu3.util".
func cardResource(card int, measure string) utilization.Resource {
	return utilization.Resource("gpu" + strconv.Itoa(card) + "." + measure)
}

// DCGMConfig configures NewDCGMSource.
type DCGMConfig struct {
	Address string
	// Util, FBUsed and FBFree are instant-vector queries with one series
	// per card: utilisation in percent, framebuffer used and free in MiB.
	Util, FBUsed, FBFree string
	NodeLabels           []string
	CardLabel            string
	Clock                clock.PassiveClock
}

// DCGMSource reads per-card load from DCGM exporter metrics in Prometheus.
type DCGMSource struct {
	api       promv1.API
	cfg       DCGMConfig
	nodeLabel []model.LabelName
}

var _ utilization.Source = &DCGMSource{}

// NewDCGMSource builds the source; it does not contact Prometheus.
func NewDCGMSource(cfg DCGMConfig) (*DCGMSource, error) {
	if cfg.CardLabel == "" || len(cfg.NodeLabels) == 0 {
		return nil, errors.New("dcgm source needs a card label and node labels")
	}
	client, err := promapi.NewClient(promapi.Config{Address: cfg.Address})
	if err != nil {
		return nil, fmt.Errorf("prometheus client for %q: %w", cfg.Address, err)
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	s := &DCGMSource{api: promv1.NewAPI(client), cfg: cfg}
	for _, l := range cfg.NodeLabels {
		s.nodeLabel = append(s.nodeLabel, model.LabelName(l))
	}
	return s, nil
}

// Name implements utilization.Source.
func (s *DCGMSource) Name() string { return DCGMSourceName }

type cardKey struct {
	node string
	card int
}

// Fetch evaluates the three queries at one time. Utilisation becomes a
// fraction; used and free framebuffer of the same card become the used
// fraction. A failing query keeps the others' samples.
func (s *DCGMSource) Fetch(ctx context.Context) (utilization.Batch, error) {
	var batch utilization.Batch
	var errs []error
	at := s.cfg.Clock.Now()
	query := func(name, q string) map[cardKey]*model.Sample {
		value, _, err := s.api.Query(ctx, q, at)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s query: %w", name, err))
			return nil
		}
		vector, ok := value.(model.Vector)
		if !ok || len(vector) == 0 {
			errs = append(errs, fmt.Errorf("%s query returned no series", name))
			return nil
		}
		out := make(map[cardKey]*model.Sample, len(vector))
		for _, series := range vector {
			node := utilization.NodeOf(series.Metric, s.nodeLabel)
			card, err := strconv.Atoi(string(series.Metric[model.LabelName(s.cfg.CardLabel)]))
			if node == "" || err != nil || card < 0 {
				batch.Drop(utilization.DropNoNode)
				continue
			}
			k := cardKey{node, card}
			if _, dup := out[k]; dup {
				batch.Drop(utilization.DropDuplicateNode)
				continue
			}
			out[k] = series
		}
		return out
	}
	for k, series := range query("util", s.cfg.Util) {
		batch.Samples = append(batch.Samples, utilization.Sample{
			Node: k.node, Resource: cardResource(k.card, measureUtil), Value: float64(series.Value) / 100,
			Time: series.Timestamp.Time(), Source: DCGMSourceName,
		})
	}
	used, free := query("fbUsed", s.cfg.FBUsed), query("fbFree", s.cfg.FBFree)
	for k, u := range used {
		f, ok := free[k]
		total := float64(u.Value) + float64(f.Value)
		if !ok || total <= 0 {
			batch.Drop(utilization.DropNoAllocatable)
			continue
		}
		batch.Samples = append(batch.Samples, utilization.Sample{
			Node: k.node, Resource: cardResource(k.card, measureFB), Value: float64(u.Value) / total,
			Time: u.Timestamp.Time(), Source: DCGMSourceName,
		})
	}
	return batch, errors.Join(errs...)
}

// cardLoad is what the plugin knows of one card's measured load.
type cardLoad struct {
	util, fb           float64
	utilKnown, fbKnown bool
}

// loadOf reads a card's load from a snapshot; unknown when stale or
// missing.
func loadOf(snap utilization.Snapshot, node *v1.Node, card int) cardLoad {
	var l cardLoad
	if s, ok := snap.ForNode(node, cardResource(card, measureUtil)); ok {
		l.util, l.utilKnown = s.Value, true
	}
	if s, ok := snap.ForNode(node, cardResource(card, measureFB)); ok {
		l.fb, l.fbKnown = s.Value, true
	}
	return l
}
