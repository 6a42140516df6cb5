package e2e

import (
	"context"
	"fmt"
	"math"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/harbormaster-dev/harbormaster/pkg/config"
	"github.com/harbormaster-dev/harbormaster/test/framework"
)

// soakPods is the size of the load test: a short run in `make test`, 10,000
// pods in `make soak` (HARBORMASTER_SOAK_PODS).
func soakPods(t *testing.T) int {
	t.Helper()
	v := os.Getenv("HARBORMASTER_SOAK_PODS")
	if v == "" {
		return 400
	}
	n, err := strconv.Atoi(v)
	require.NoError(t, err, "HARBORMASTER_SOAK_PODS")
	require.Positive(t, n)
	return n
}

// TestLoadWithWebhookReplicaFailure creates pods through the real API
// server from parallel clients with two webhook replicas behind a load
// balancer (a Service's stand-in) and the scheduler in the loop, and kills
// one replica mid-load. No pod is lost, every pod is mutated and placed,
// system namespaces are never blocked, and the API server's own admission
// latency histogram gives p50/p99.
func TestLoadWithWebhookReplicaFailure(t *testing.T) {
	pods := soakPods(t)
	const clients = 8
	ctx := t.Context()
	cp := framework.Start(t, framework.Options{})

	var nodes []framework.NodeSpec
	for i := range pods/150 + 2 {
		nodes = append(nodes, framework.NodeSpec{
			Name: fmt.Sprintf("general-%d", i), CPU: "200", Memory: "800Gi", Pods: 200,
			Labels: map[string]string{config.LabelHostGroup: "general"},
		})
	}
	require.NoError(t, framework.CreateNodes(ctx, cp.Client, nodes...))

	certDir := t.TempDir()
	primary, err := framework.StartWebhookWith(ctx, cp, certDir, admissionConfig, framework.WebhookOptions{SkipInstall: true})
	require.NoError(t, err)
	t.Cleanup(primary.Stop)
	standby, err := framework.StartWebhookWith(ctx, cp, certDir, admissionConfig, framework.WebhookOptions{SkipInstall: true, ReuseCert: true})
	require.NoError(t, err)
	t.Cleanup(standby.Stop)
	lb, err := framework.StartLoadBalancer(ctx, hostPort(t, primary.URL), hostPort(t, standby.URL))
	require.NoError(t, err)
	t.Cleanup(lb.Stop)
	require.NoError(t, framework.InstallAt(ctx, cp, "https://"+lb.Addr, primary.CABundle, primary, standby))
	framework.RunScheduler(t, cp.SchedulerConfig(corev1.DefaultSchedulerName, "", false))

	namespaces := []string{"team-a-load-0", "team-a-load-1"}
	for _, ns := range namespaces {
		_, err := cp.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
			ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{config.LabelTenant: "team-a"}},
		}, metav1.CreateOptions{})
		require.NoError(t, err)
	}

	// Clients retry a failed create like a controller would; a retry is
	// only acceptable for a request cut by the replica's death.
	var created, retries atomic.Int64
	var failures sync.Map
	killAt := int64(pods * 2 / 5)
	var killOnce sync.Once
	start := time.Now()
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := c; i < pods; i += clients {
				ns := namespaces[i%len(namespaces)]
				pod := &corev1.Pod{
					ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("load-%05d", i), Labels: map[string]string{"app.kubernetes.io/name": fmt.Sprintf("app-%d", i%20)}},
					Spec:       limitOnly("1", "1Gi"),
				}
				var err error
				for attempt := range 3 {
					if attempt > 0 {
						retries.Add(1)
					}
					if _, err = cp.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err == nil {
						break
					}
				}
				if err != nil {
					failures.Store(pod.Name, err.Error())
					continue
				}
				if created.Add(1) == killAt {
					killOnce.Do(func() { go primary.Stop() })
				}
			}
		}()
	}

	// While the load runs and one replica dies, system namespaces stay
	// unblocked (they are excluded from every webhook).
	sys, err := cp.Client.CoreV1().Pods(metav1.NamespaceSystem).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "system-"}, Spec: limitOnly("1", "1Gi"),
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	require.NotContains(t, sys.Annotations, config.AnnotationOvercommit)
	wg.Wait()
	createDuration := time.Since(start)

	failures.Range(func(k, v any) bool {
		t.Errorf("pod %s lost: %s", k, v)
		return true
	})
	require.EqualValues(t, pods, created.Load(), "every pod created")
	require.LessOrEqual(t, retries.Load(), int64(clients*3), "retries only for requests cut by the replica's death")

	// Every pod is mutated and placed.
	require.NoError(t, wait.PollUntilContextTimeout(ctx, time.Second, time.Duration(pods/10+120)*time.Second, true, func(ctx context.Context) (bool, error) {
		pending := 0
		for _, ns := range namespaces {
			list, err := cp.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName="})
			if err != nil {
				return false, nil
			}
			pending += len(list.Items)
		}
		return pending == 0, nil
	}), "every pod is placed")
	placeDuration := time.Since(start)
	for _, ns := range namespaces {
		list, err := cp.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		require.NoError(t, err)
		for _, p := range list.Items {
			require.Contains(t, p.Annotations, config.AnnotationOvercommit, "%s/%s mutated", ns, p.Name)
			require.Equal(t, "500m", p.Spec.Containers[0].Resources.Requests.Cpu().String(), "%s/%s ratio applied", ns, p.Name)
		}
	}
	require.Positive(t, testutil.ToFloat64(standby.Server.Metrics.Requests.WithLabelValues("pods", "patched")), "the surviving replica served")

	p50, p99, count := admissionLatency(t, cp, "tenant-pods.harbormaster.io")
	t.Logf("load: %d pods from %d clients, one of two webhook replicas killed after %d: created in %s (%.0f pods/s), all placed after %s; %d retries; "+
		"API server admission latency of tenant-pods.harbormaster.io over %d calls: p50 %.1f ms, p99 %.1f ms",
		pods, clients, killAt, createDuration.Round(time.Millisecond), float64(pods)/createDuration.Seconds(), placeDuration.Round(time.Millisecond),
		retries.Load(), count, p50*1000, p99*1000)
}

func hostPort(t *testing.T, rawURL string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	require.NoError(t, err)
	return u.Host
}

// admissionLatency reads apiserver_admission_webhook_admission_duration_seconds
// of one webhook from the API server's /metrics and interpolates p50 and
// p99 from its buckets, as histogram_quantile does.
func admissionLatency(t *testing.T, cp *framework.ControlPlane, webhook string) (p50, p99 float64, count uint64) {
	t.Helper()
	raw, err := cp.Client.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(t.Context())
	require.NoError(t, err)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(string(raw)))
	require.NoError(t, err)
	family := families["apiserver_admission_webhook_admission_duration_seconds"]
	require.NotNil(t, family, "the API server exports webhook admission latency")
	buckets := map[float64]uint64{}
	for _, m := range family.GetMetric() {
		if label(m, "name") != webhook || label(m, "operation") != "CREATE" {
			continue
		}
		h := m.GetHistogram()
		count += h.GetSampleCount()
		for _, b := range h.GetBucket() {
			buckets[b.GetUpperBound()] += b.GetCumulativeCount()
		}
	}
	require.Positive(t, count, "webhook %s was called", webhook)
	bounds := make([]float64, 0, len(buckets))
	for b := range buckets {
		bounds = append(bounds, b)
	}
	sort.Float64s(bounds)
	quantile := func(q float64) float64 {
		rank := q * float64(count)
		prevBound, prevCount := 0.0, 0.0
		for _, b := range bounds {
			c := float64(buckets[b])
			if c >= rank {
				if math.IsInf(b, 1) {
					return prevBound
				}
				return prevBound + (b-prevBound)*(rank-prevCount)/(c-prevCount)
			}
			prevBound, prevCount = b, c
		}
		return prevBound
	}
	return quantile(0.5), quantile(0.99), count
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
