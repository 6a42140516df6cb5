package gpu

import (
	"sync"

	"k8s.io/apimachinery/pkg/types"

	"github.com/harbormaster-dev/harbormaster/pkg/gpu"
)

// ledger remembers the cards the plugin reserved for each pod it placed.
// A pod's annotation is the source of truth once the scheduler's cache has
// it, but an assumed pod (reserved, not yet bound) is in the cache without
// it; the ledger fills that gap. Entries go on Unreserve, pod deletion and
// node deletion. Each node has a version bumped on every change to its
// entries, so cached node states can tell they are out of date.
type ledger struct {
	mu       sync.RWMutex
	byPod    map[types.UID]ledgerEntry
	versions map[string]uint64
}

type ledgerEntry struct {
	node       string
	assignment gpu.Assignment
}

func newLedger() *ledger {
	return &ledger{byPod: map[types.UID]ledgerEntry{}, versions: map[string]uint64{}}
}

func (l *ledger) reserve(uid types.UID, node string, a gpu.Assignment) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if old, ok := l.byPod[uid]; ok {
		l.versions[old.node]++
	}
	l.byPod[uid] = ledgerEntry{node: node, assignment: a}
	l.versions[node]++
}

// unreserve drops uid's entry if it is for node.
func (l *ledger) unreserve(uid types.UID, node string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.byPod[uid]; ok && e.node == node {
		delete(l.byPod, uid)
		l.versions[node]++
	}
}

// forget drops uid's entry wherever it is.
func (l *ledger) forget(uid types.UID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.byPod[uid]; ok {
		delete(l.byPod, uid)
		l.versions[e.node]++
	}
}

// forgetNode drops every entry of a deleted node.
func (l *ledger) forgetNode(node string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for uid, e := range l.byPod {
		if e.node == node {
			delete(l.byPod, uid)
		}
	}
	delete(l.versions, node)
}

// lookup returns uid's reserved assignment if it is for node.
func (l *ledger) lookup(uid types.UID, node string) (gpu.Assignment, bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	e, ok := l.byPod[uid]
	if !ok || e.node != node {
		return gpu.Assignment{}, false
	}
	return e.assignment, true
}

func (l *ledger) version(node string) uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.versions[node]
}

func (l *ledger) len() int {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return len(l.byPod)
}
