package utilization

import (
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/clock"
)

// BindTracker remembers when each pod was bound to its node, so a consumer
// can tell which pods a node's latest sample cannot reflect yet. It is fed
// by a pod informer; see EventHandler.
type BindTracker struct {
	clock clock.PassiveClock

	mu      sync.RWMutex
	boundAt map[types.UID]time.Time
}

// NewBindTracker returns an empty tracker.
func NewBindTracker(clk clock.PassiveClock) *BindTracker {
	if clk == nil {
		clk = clock.RealClock{}
	}
	return &BindTracker{clock: clk, boundAt: map[types.UID]time.Time{}}
}

// BoundAt returns when a pod was bound. False means the tracker has not seen
// it bound: typically a pod the scheduler assumed onto a node whose binding
// is still in flight, which is as new as a pod can be.
func (t *BindTracker) BoundAt(uid types.UID) (time.Time, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	at, ok := t.boundAt[uid]
	return at, ok
}

// Len is the number of pods tracked.
func (t *BindTracker) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.boundAt)
}

// Observe records a pod's bind time the first time it is seen bound.
// inInitialList is true for pods listed when the informer started, which
// may have been bound long before.
func (t *BindTracker) Observe(pod *corev1.Pod, inInitialList bool) {
	if pod.Spec.NodeName == "" {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.boundAt[pod.UID]; ok {
		return
	}
	t.boundAt[pod.UID] = t.bindTime(pod, inInitialList)
}

// bindTime prefers the API server's record: binding sets PodScheduled=True
// with a transition time, which survives scheduler restarts. Its precision is
// one second, so the end of that second is used: later is the safe side, as
// it can only make a pod count as not yet reflected in a sample.
func (t *BindTracker) bindTime(pod *corev1.Pod, inInitialList bool) time.Time {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionTrue && !c.LastTransitionTime.IsZero() {
			return c.LastTransitionTime.Add(time.Second)
		}
	}
	if inInitialList && !pod.CreationTimestamp.IsZero() {
		// Bound by someone else (nodeName set at creation) before we started.
		return pod.CreationTimestamp.Add(time.Second)
	}
	return t.clock.Now()
}

// Forget drops a deleted pod.
func (t *BindTracker) Forget(uid types.UID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.boundAt, uid)
}

// EventHandler feeds the tracker from a pod informer.
func (t *BindTracker) EventHandler() cache.ResourceEventHandler {
	return cache.ResourceEventHandlerDetailedFuncs{
		AddFunc: func(obj interface{}, isInInitialList bool) {
			if pod, ok := obj.(*corev1.Pod); ok {
				t.Observe(pod, isInInitialList)
			}
		},
		UpdateFunc: func(_, newObj interface{}) {
			if pod, ok := newObj.(*corev1.Pod); ok {
				t.Observe(pod, false)
			}
		},
		DeleteFunc: func(obj interface{}) {
			if tombstone, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = tombstone.Obj
			}
			if pod, ok := obj.(*corev1.Pod); ok {
				t.Forget(pod.UID)
			}
		},
	}
}
