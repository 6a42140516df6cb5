package framework

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/component-base/configz"
	"k8s.io/kubernetes/cmd/kube-scheduler/app"
	"k8s.io/kubernetes/cmd/kube-scheduler/app/options"

	"github.com/harbormaster-dev/harbormaster/pkg/schedulerapp"
)

// SchedulerConfig renders a KubeSchedulerConfiguration for the harness: one
// profile named profileName with the given YAML plugin section (may be
// empty), talking to the control plane, no leader election unless asked.
func (cp *ControlPlane) SchedulerConfig(profileName, pluginsYAML string, leaderElect bool) string {
	return fmt.Sprintf(`apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: %q
  qps: 500
  burst: 1000
leaderElection:
  leaderElect: %t
  resourceName: %s
  resourceNamespace: kube-system
profiles:
- schedulerName: %s
%s
`, cp.KubeconfigPath, leaderElect, profileName, profileName, pluginsYAML)
}

// RunningScheduler is an in-process scheduler built with Harbormaster's
// plugin registry, the same code as cmd/scheduler.
type RunningScheduler struct {
	cancel context.CancelFunc
	done   chan error
}

// StartScheduler runs a scheduler with the given KubeSchedulerConfiguration
// YAML until Stop. It uses app.Setup/app.Run rather than the cobra command
// because the command installs a process-wide signal handler, which may be
// set only once per process.
func StartScheduler(ctx context.Context, dir, configYAML string) (*RunningScheduler, error) {
	path := filepath.Join(dir, fmt.Sprintf("scheduler-%d.yaml", time.Now().UnixNano()))
	if err := os.WriteFile(path, []byte(configYAML), 0o600); err != nil {
		return nil, err
	}
	opts := options.NewOptions()
	opts.ConfigFile = path
	// No serving: tests read state from the API server, and parallel
	// schedulers would fight over the port.
	opts.SecureServing.BindPort = 0
	if err := opts.ComponentGlobalsRegistry.Set(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	cc, sched, err := app.Setup(ctx, opts, schedulerapp.RegistryOptions()...)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("scheduler setup: %w", err)
	}
	rs := &RunningScheduler{cancel: cancel, done: make(chan error, 1)}
	// app.Run registers its configuration under a process-wide configz name
	// and fails if an earlier in-process scheduler of this test binary did.
	// Nothing serves /configz here (BindPort=0), so dropping the old entry
	// is harmless.
	configz.Delete("componentconfig")
	go func() { rs.done <- app.Run(ctx, cc, sched) }()
	return rs, nil
}

// Stop cancels the scheduler and waits for it to return.
func (s *RunningScheduler) Stop() error {
	s.cancel()
	select {
	case err := <-s.done:
		if err != nil && !errors.Is(err, context.Canceled) && err.Error() != "finished without leader elect" {
			return err
		}
		return nil
	case <-time.After(30 * time.Second):
		return errors.New("scheduler did not stop within 30s")
	}
}

// RunScheduler is StartScheduler for tests, stopped at test end.
func RunScheduler(t testing.TB, configYAML string) *RunningScheduler {
	t.Helper()
	s, err := StartScheduler(context.Background(), t.TempDir(), configYAML)
	if err != nil {
		t.Fatalf("scheduler: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("stopping scheduler: %v", err)
		}
	})
	return s
}
