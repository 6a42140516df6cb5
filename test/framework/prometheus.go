package framework

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// DefaultPrometheusBinary is where Debian's prometheus package installs
// the server (`apt-get install -y prometheus`).
const DefaultPrometheusBinary = "/usr/bin/prometheus"

// PrometheusOptions configures a Prometheus server for a test.
type PrometheusOptions struct {
	// Binary is the prometheus executable: empty means
	// $HARBORMASTER_PROMETHEUS, else DefaultPrometheusBinary, else
	// prometheus on $PATH.
	Binary string
	// Targets are host:port addresses scraped at /metrics.
	Targets []string
	// ScrapeInterval defaults to one second so tests observe changes fast.
	ScrapeInterval time.Duration
	// Output receives the server's logs; nil discards them.
	Output io.Writer
}

// Prometheus is a real Prometheus server run as a child process, with its
// configuration and TSDB in a private directory.
type Prometheus struct {
	// URL is the base URL of the HTTP API, e.g. http://127.0.0.1:41234.
	URL  string
	proc *process
}

// StartPrometheus writes a scrape configuration for opts.Targets into dir,
// starts the server on a free port and waits until it is ready.
func StartPrometheus(ctx context.Context, dir string, opts PrometheusOptions) (*Prometheus, error) {
	binary, err := resolvePrometheus(opts.Binary)
	if err != nil {
		return nil, err
	}
	interval := opts.ScrapeInterval
	if interval <= 0 {
		interval = time.Second
	}
	targets := make([]string, len(opts.Targets))
	for i, t := range opts.Targets {
		targets[i] = strconv.Quote(t)
	}
	cfg := fmt.Sprintf(`global:
  scrape_interval: %[1]s
  evaluation_interval: %[1]s
scrape_configs:
- job_name: harbormaster-test
  scrape_interval: %[1]s
  scrape_timeout: %[1]s
  static_configs:
  - targets: [%[2]s]
`, interval, strings.Join(targets, ", "))
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	p, err := startProcess(binary, []string{
		"--config.file=" + cfgPath,
		"--storage.tsdb.path=" + filepath.Join(dir, "tsdb"),
		"--storage.tsdb.retention.time=1h",
		"--web.listen-address=" + addr,
		"--log.level=warn",
	}, opts.Output)
	if err != nil {
		return nil, err
	}
	prom := &Prometheus{URL: "http://" + addr, proc: p}
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		if p.exited() {
			return false, fmt.Errorf("prometheus exited: %s", p.tail())
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, prom.URL+"/-/ready", nil)
		if err != nil {
			return false, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false, nil
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		_ = prom.Stop()
		return nil, fmt.Errorf("waiting for prometheus: %w", err)
	}
	return prom, nil
}

// RunPrometheus is StartPrometheus for tests: it fails the test on error
// and stops the server when the test ends.
func RunPrometheus(t testing.TB, opts PrometheusOptions) *Prometheus {
	t.Helper()
	if opts.Output == nil && os.Getenv("HARBORMASTER_TEST_LOGS") != "" {
		opts.Output = os.Stderr
	}
	prom, err := StartPrometheus(context.Background(), t.TempDir(), opts)
	if err != nil {
		t.Fatalf("prometheus: %v", err)
	}
	t.Cleanup(func() { _ = prom.Stop() })
	return prom
}

// Stop terminates the server; calling it again is harmless.
func (p *Prometheus) Stop() error { return p.proc.stop(10 * time.Second) }

// Running reports whether the server process is alive.
func (p *Prometheus) Running() bool { return !p.proc.exited() }

// Query evaluates an instant PromQL query and returns the number of series
// in the resulting vector.
func (p *Prometheus) Query(ctx context.Context, query string) (int, error) {
	u := p.URL + "/api/v1/query?" + url.Values{"query": {query}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string            `json:"resultType"`
			Result     []json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return 0, err
	}
	if body.Status != "success" {
		return 0, errors.New(body.Error)
	}
	return len(body.Data.Result), nil
}

// WaitForSeries polls until query returns at least n series, i.e. the
// targets were scraped.
func (p *Prometheus) WaitForSeries(ctx context.Context, query string, n int, timeout time.Duration) error {
	var last int
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		got, err := p.Query(ctx, query)
		if err != nil {
			return false, nil
		}
		last = got
		return got >= n, nil
	})
	if err != nil {
		return fmt.Errorf("query %q has %d series, want %d: %w", query, last, n, err)
	}
	return nil
}

func resolvePrometheus(binary string) (string, error) {
	if binary == "" {
		binary = os.Getenv("HARBORMASTER_PROMETHEUS")
	}
	if binary != "" {
		return binary, nil
	}
	if _, err := os.Stat(DefaultPrometheusBinary); err == nil {
		return DefaultPrometheusBinary, nil
	}
	path, err := exec.LookPath("prometheus")
	if err != nil {
		return "", fmt.Errorf("prometheus not found (install it with `apt-get install -y prometheus` or set HARBORMASTER_PROMETHEUS): %w", err)
	}
	return path, nil
}
