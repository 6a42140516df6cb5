// Package utilization is Harbormaster's node-utilisation pipeline: sources
// that fetch real usage (Prometheus, metrics.k8s.io), a store that keeps the
// latest valid sample per node and resource with its timestamp and source,
// one background refresher per source, and a tracker of when pods were bound
// so that placements made since a node's last sample can be estimated.
//
// Scheduler plugins read immutable snapshots of the store; they never wait on
// the network. A sample older than the store's window is unknown, and unknown
// is never the same as idle: consumers must treat it as neutral.
package utilization

import (
	"math"
	"time"
)

// Resource is a node resource whose utilisation the pipeline tracks.
type Resource string

const (
	// CPU is the fraction of the node's allocatable CPU in use.
	CPU Resource = "cpu"
	// Memory is the fraction of the node's allocatable memory in use.
	Memory Resource = "memory"
)

// Resources lists every resource the pipeline knows, in a stable order.
func Resources() []Resource { return []Resource{CPU, Memory} }

// Sample is one utilisation reading: the fraction in [0, 1] of a node's
// resource in use at Time, as reported by Source.
type Sample struct {
	Node     string
	Resource Resource
	Value    float64
	Time     time.Time
	Source   string
}

// DropReason says why a sample was discarded instead of stored.
type DropReason string

const (
	// DropNotANumber is NaN or ±Inf, e.g. a division by a zero total.
	DropNotANumber DropReason = "not_a_number"
	// DropNegative is a utilisation below zero.
	DropNegative DropReason = "negative"
	// DropOver100Percent is a utilisation above one: the query or the
	// capacity it was divided by is wrong, so the value is not trusted.
	DropOver100Percent DropReason = "over_100_percent"
	// DropNoNode is a sample the source could not attribute to a node.
	DropNoNode DropReason = "no_node"
	// DropNoAllocatable is a usage the source could not turn into a fraction
	// because the node's allocatable is unknown or zero.
	DropNoAllocatable DropReason = "no_allocatable"
)

// Batch is what one fetch of a source produced: the samples it could read
// and how many it had to discard, by reason.
type Batch struct {
	Samples []Sample
	Dropped map[DropReason]int
}

// Drop counts a discarded sample.
func (b *Batch) Drop(reason DropReason) {
	if b.Dropped == nil {
		b.Dropped = map[DropReason]int{}
	}
	b.Dropped[reason]++
}

// Validate reports why a sample must be dropped, or "" if it is usable.
func Validate(s Sample) DropReason {
	switch {
	case s.Node == "":
		return DropNoNode
	case math.IsNaN(s.Value) || math.IsInf(s.Value, 0):
		return DropNotANumber
	case s.Value < 0:
		return DropNegative
	case s.Value > 1:
		return DropOver100Percent
	}
	return ""
}
