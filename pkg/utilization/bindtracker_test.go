package utilization

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
	testingclock "k8s.io/utils/clock/testing"
)

func trackedPod(uid, node string, created time.Time, scheduledAt *time.Time) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{UID: types.UID(uid), Name: uid, Namespace: "ns", CreationTimestamp: metav1.NewTime(created)},
		Spec:       corev1.PodSpec{NodeName: node},
	}
	if scheduledAt != nil {
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(*scheduledAt)}}
	}
	return p
}

func TestBindTracker(t *testing.T) {
	clk := testingclock.NewFakeClock(t0)
	tr := NewBindTracker(clk)
	h := tr.EventHandler().(cache.ResourceEventHandlerDetailedFuncs)
	boundEarlier := t0.Add(-time.Hour)

	// Unbound pods are not tracked.
	h.AddFunc(trackedPod("pending", "", t0, nil), false)
	_, ok := tr.BoundAt("pending")
	assert.False(t, ok)

	// The API server's PodScheduled time wins, rounded up to the second's end.
	h.AddFunc(trackedPod("cond", "n1", boundEarlier, &boundEarlier), true)
	at, ok := tr.BoundAt("cond")
	assert.True(t, ok)
	assert.Equal(t, boundEarlier.Add(time.Second), at)

	// Listed at start without a condition: assume bound at creation.
	h.AddFunc(trackedPod("static", "n1", boundEarlier, nil), true)
	at, _ = tr.BoundAt("static")
	assert.Equal(t, boundEarlier.Add(time.Second), at)

	// Seen binding live without a condition: now.
	old := trackedPod("live", "", boundEarlier, nil)
	h.UpdateFunc(old, trackedPod("live", "n2", boundEarlier, nil))
	at, _ = tr.BoundAt("live")
	assert.Equal(t, t0, at)

	// Later updates keep the first bind time.
	clk.Step(time.Minute)
	h.UpdateFunc(nil, trackedPod("live", "n2", boundEarlier, nil))
	at, _ = tr.BoundAt("live")
	assert.Equal(t, t0, at)

	assert.Equal(t, 3, tr.Len())
	h.DeleteFunc(trackedPod("live", "n2", boundEarlier, nil))
	h.DeleteFunc(cache.DeletedFinalStateUnknown{Key: "ns/cond", Obj: trackedPod("cond", "n1", boundEarlier, nil)})
	assert.Equal(t, 1, tr.Len())
}
