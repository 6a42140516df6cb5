package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// child is a component the demo runs as a process of its own, as it runs
// in a cluster. It writes its output to a log file in the state dir and
// dies with the demo even when the demo itself is killed (Pdeathsig).
type child struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	// done is closed once the process has exited and been reaped.
	done chan struct{}
}

func startChild(name, logPath, binary string, args ...string) (*child, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	// The child writes to its own copy of the descriptor.
	defer logFile.Close()
	cmd := exec.Command(binary, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Its own process group: a Ctrl-C in the terminal reaches the demo
	// only, which then stops the children in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	c := &child{name: name, logPath: logPath, cmd: cmd, done: make(chan struct{})}
	// Ends when the process does; stop makes sure it does.
	go func() {
		_ = cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// stop asks the process to terminate and kills its process group if it
// has not within grace.
func (c *child) stop(grace time.Duration) {
	if c.exited() {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(grace):
		_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
		<-c.done
	}
}

// logTail is the end of the child's log, for error messages.
func (c *child) logTail() string {
	b, err := os.ReadFile(c.logPath)
	if err != nil {
		return err.Error()
	}
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

// waitHealthy polls url until it answers 200, failing early if the child
// exits.
func (c *child) waitHealthy(ctx context.Context, url string, timeout time.Duration) error {
	client := localHTTPClient()
	defer client.CloseIdleConnections()
	return c.waitFor(ctx, timeout, func(ctx context.Context) bool {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return false
		}
		resp, err := client.Do(req)
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// localHTTPClient talks to the processes the demo started on 127.0.0.1,
// some behind self-signed certificates (kube-scheduler's).
func localHTTPClient() *http.Client {
	return &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
	}}
}

// metricValue reads the first sample of metric name whose labels include
// every one of labels (e.g. `resource="cpu"`, as the text exposition format
// writes them) from a Prometheus endpoint.
func metricValue(ctx context.Context, client *http.Client, url, name string, labels ...string) (float64, bool) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, false
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	lines := bufio.NewScanner(resp.Body)
next:
	for lines.Scan() {
		// name{labels} value
		rest, ok := strings.CutPrefix(lines.Text(), name+"{")
		if !ok {
			continue
		}
		labelSet, value, ok := strings.Cut(rest, "} ")
		if !ok {
			continue
		}
		for _, l := range labels {
			if !strings.Contains(labelSet, l) {
				continue next
			}
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		return v, err == nil
	}
	return 0, false
}

// waitFor polls cond until it holds, failing early with the log's tail if
// the child exits.
func (c *child) waitFor(ctx context.Context, timeout time.Duration, cond func(context.Context) bool) error {
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		if c.exited() {
			return false, fmt.Errorf("%s exited; the end of %s:\n%s", c.name, c.logPath, c.logTail())
		}
		return cond(ctx), nil
	})
	if err != nil && !c.exited() {
		return fmt.Errorf("waiting for %s (log: %s): %w", c.name, c.logPath, err)
	}
	return err
}

// goBuild builds a command of this module into binary; the go command
// skips the link when binary is already up to date.
func goBuild(ctx context.Context, root, binary, pkg string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", binary, pkg)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build -o %s %s: %w\n%s", filepath.Base(binary), pkg, err, out)
	}
	return nil
}
