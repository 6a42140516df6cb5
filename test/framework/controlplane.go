// Package framework runs Harbormaster's code against a real Kubernetes control
// plane on this machine: etcd and kube-apiserver through controller-runtime's
// envtest, plus a real kube-controller-manager, all built from Go modules into
// bin/ (see hack/tools). Tests, benchmarks and the demo share it.
package framework

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// Options selects what StartControlPlane runs besides etcd and kube-apiserver.
type Options struct {
	// BinDir holds etcd, kube-apiserver and kube-controller-manager. Empty
	// means $KUBEBUILDER_ASSETS, else bin/ at the repository root.
	BinDir string
	// ControllerManager starts kube-controller-manager (Deployments,
	// ReplicaSets, Jobs, DaemonSets, ... only work with it).
	ControllerManager bool
	// CRDDirectoryPaths are installed before StartControlPlane returns.
	CRDDirectoryPaths []string
	// Output receives the control plane's logs; nil discards them.
	Output io.Writer
}

// ControlPlane is a running etcd + kube-apiserver (+ kube-controller-manager).
type ControlPlane struct {
	Env    *envtest.Environment
	Config *rest.Config
	Client kubernetes.Interface
	// KubeconfigPath is an admin kubeconfig on disk, for kubectl and for
	// components started as subprocesses.
	KubeconfigPath string

	dir string
	kcm *process
}

// StartControlPlane starts a control plane and waits until it serves.
func StartControlPlane(ctx context.Context, opts Options) (*ControlPlane, error) {
	binDir, err := resolveBinDir(opts.BinDir)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "harbormaster-cp-")
	if err != nil {
		return nil, err
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: binDir,
		CRDDirectoryPaths:     opts.CRDDirectoryPaths,
		ErrorIfCRDPathMissing: len(opts.CRDDirectoryPaths) > 0,
	}
	if opts.Output != nil {
		env.ControlPlane.GetAPIServer().Out = opts.Output
		env.ControlPlane.GetAPIServer().Err = opts.Output
	}
	cfg, err := env.Start()
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("starting etcd and kube-apiserver from %s: %w", binDir, err)
	}
	cp := &ControlPlane{Env: env, Config: cfg, dir: dir}
	cp.Client, err = kubernetes.NewForConfig(cfg)
	if err != nil {
		_ = cp.Stop()
		return nil, err
	}
	cp.KubeconfigPath = filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(cp.KubeconfigPath, env.KubeConfig, 0o600); err != nil {
		_ = cp.Stop()
		return nil, err
	}
	if opts.ControllerManager {
		if err := cp.StartControllerManager(ctx, opts.Output); err != nil {
			_ = cp.Stop()
			return nil, err
		}
	}
	return cp, nil
}

// Start is StartControlPlane for tests: it fails the test on error and stops
// everything when the test ends, whether it passed or not.
func Start(t testing.TB, opts Options) *ControlPlane {
	t.Helper()
	if opts.Output == nil && os.Getenv("HARBORMASTER_TEST_LOGS") != "" {
		opts.Output = os.Stderr
	}
	cp, err := StartControlPlane(context.Background(), opts)
	if err != nil {
		t.Fatalf("control plane: %v", err)
	}
	t.Cleanup(func() {
		if err := cp.Stop(); err != nil {
			t.Errorf("stopping control plane: %v", err)
		}
	})
	return cp
}

// StartControllerManager runs kube-controller-manager against the API
// server. The node lifecycle controller is off: simulated nodes have no
// kubelet renewing leases, and it would taint them unreachable.
func (cp *ControlPlane) StartControllerManager(ctx context.Context, out io.Writer) error {
	if cp.kcm != nil {
		return errors.New("kube-controller-manager already running")
	}
	binDir := cp.Env.BinaryAssetsDirectory
	port, err := FreePort()
	if err != nil {
		return err
	}
	certDir := cp.Env.ControlPlane.APIServer.CertDir
	args := []string{
		"--kubeconfig=" + cp.KubeconfigPath,
		"--authentication-kubeconfig=" + cp.KubeconfigPath,
		"--authorization-kubeconfig=" + cp.KubeconfigPath,
		"--bind-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(port),
		"--cert-dir=" + filepath.Join(cp.dir, "kcm-certs"),
		"--leader-elect=false",
		"--controllers=*,-nodelifecycle,-nodeipam,-cloud-node-lifecycle,-service-lb-controller,-node-route-controller",
		"--service-account-private-key-file=" + filepath.Join(certDir, "sa-signer.key"),
		"--use-service-account-credentials=false",
		"--concurrent-deployment-syncs=10",
		"--concurrent-replicaset-syncs=10",
		// A test observes a controller's effect, so resync fast.
		"--min-resync-period=30s",
	}
	p, err := startProcess(filepath.Join(binDir, "kube-controller-manager"), args, out)
	if err != nil {
		return err
	}
	cp.kcm = p
	// Ready when its health endpoint answers; TLS is self-signed.
	healthz := fmt.Sprintf("127.0.0.1:%d", port)
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 60*time.Second, true, func(context.Context) (bool, error) {
		if p.exited() {
			return false, fmt.Errorf("kube-controller-manager exited: %s", p.tail())
		}
		c, err := net.DialTimeout("tcp", healthz, time.Second)
		if err != nil {
			return false, nil
		}
		_ = c.Close()
		return true, nil
	})
	if err != nil {
		_ = cp.StopControllerManager()
		return fmt.Errorf("waiting for kube-controller-manager: %w", err)
	}
	return nil
}

// StopControllerManager stops kube-controller-manager, leaving the API
// server running.
func (cp *ControlPlane) StopControllerManager() error {
	if cp.kcm == nil {
		return nil
	}
	err := cp.kcm.stop(10 * time.Second)
	cp.kcm = nil
	return err
}

// Stop stops every process of the control plane and removes its files.
func (cp *ControlPlane) Stop() error {
	errs := []error{cp.StopControllerManager(), cp.Env.Stop()}
	errs = append(errs, os.RemoveAll(cp.dir))
	return errors.Join(errs...)
}

// FreePort asks the kernel for a free TCP port on 127.0.0.1.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func resolveBinDir(dir string) (string, error) {
	if dir == "" {
		dir = os.Getenv("KUBEBUILDER_ASSETS")
	}
	if dir == "" {
		root, err := RepoRoot()
		if err != nil {
			return "", err
		}
		dir = filepath.Join(root, "bin")
	}
	for _, b := range []string{"etcd", "kube-apiserver", "kube-controller-manager"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			return "", fmt.Errorf("control plane binary %s missing in %s (run `make tools`): %w", b, dir, err)
		}
	}
	return dir, nil
}

// RepoRoot finds the repository root by walking up to the go.mod of the
// main module.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(data, []byte("module github.com/harbormaster-dev/harbormaster\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("repository root (go.mod of github.com/harbormaster-dev/harbormaster) not found")
		}
		dir = parent
	}
}

// process is a child that dies with its parent (Pdeathsig), so a test binary
// killed by a timeout leaves no orphan behind.
type process struct {
	cmd  *exec.Cmd
	done chan struct{}
	mu   sync.Mutex
	log  bytes.Buffer
}

func startProcess(path string, args []string, out io.Writer) (*process, error) {
	p := &process{cmd: exec.Command(path, args...), done: make(chan struct{})}
	w := io.Writer(&lockedWriter{p: p})
	if out != nil {
		w = io.MultiWriter(w, out)
	}
	p.cmd.Stdout, p.cmd.Stderr = w, w
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", path, err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// tail returns the last lines the process wrote, for error messages.
func (p *process) tail() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	b := p.log.Bytes()
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

func (p *process) stop(grace time.Duration) error {
	if p.exited() {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
	return nil
}

type lockedWriter struct{ p *process }

func (w *lockedWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	// Keep memory bounded for long runs: only the tail matters.
	if w.p.log.Len() > 1<<20 {
		keep := w.p.log.Bytes()[w.p.log.Len()-4096:]
		w.p.log = *bytes.NewBuffer(append([]byte(nil), keep...))
	}
	return w.p.log.Write(b)
}
