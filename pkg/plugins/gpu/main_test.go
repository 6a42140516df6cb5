package gpu

import (
	"os"
	"testing"

	"k8s.io/kubernetes/pkg/scheduler/metrics"
)

// The framework runtime records plugin metrics into the scheduler's metric
// vectors, which exist only once registered.
func TestMain(m *testing.M) {
	metrics.Register()
	os.Exit(m.Run())
}
