package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"

	"github.com/harbormaster-dev/harbormaster/pkg/config"
	"github.com/harbormaster-dev/harbormaster/pkg/gpu"
	"github.com/harbormaster-dev/harbormaster/pkg/mutation"
	"github.com/harbormaster-dev/harbormaster/pkg/plugins/loadaware"
	"github.com/harbormaster-dev/harbormaster/test/framework"
)

// demo applies the sample tenants and workloads and reports on them.
type demo struct {
	cp     *framework.ControlPlane
	out    io.Writer
	config string // the configuration document the webhook starts with
	nodes  []framework.NodeSpec
}

// Tenant namespaces of the example configuration.
const (
	nsWeb   = "team-a-web"
	nsBatch = "team-a-batch"
	nsML    = "team-b-ml"
)

func (d *demo) run(ctx context.Context) error {
	c := d.cp.Client
	for ns, tenant := range map[string]string{nsWeb: "team-a", nsBatch: "team-a", nsML: "team-b"} {
		if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
			ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{config.LabelTenant: tenant}},
		}, metav1.CreateOptions{}); err != nil {
			return err
		}
	}

	fmt.Fprintln(d.out, "\nApplying sample workloads (limits only; Harbormaster sets requests and placement) ...")
	if _, err := c.AppsV1().Deployments(nsWeb).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](3),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/name": "web"}},
			Template: podTemplate(map[string]string{"app.kubernetes.io/name": "web"}, "2", "2Gi"),
		},
	}, metav1.CreateOptions{}); err != nil {
		return err
	}
	if _, err := c.AppsV1().StatefulSets(nsWeb).Create(ctx, &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "cache"},
		Spec: appsv1.StatefulSetSpec{
			// The default OrderedReady policy: cache-1 is created once kwok
			// reports cache-0 Ready, as it would be after a kubelet did.
			Replicas: ptr.To[int32](2),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/name": "cache"}},
			Template: podTemplate(map[string]string{"app.kubernetes.io/name": "cache"}, "1", "4Gi"),
		},
	}, metav1.CreateOptions{}); err != nil {
		return err
	}
	jobs := []struct {
		name   string
		labels map[string]string
		cpu    string
		mem    string
	}{
		// Picks the batch host group, whose cpu ratio is 4.
		{"nightly-report", map[string]string{config.LabelHostGroup: "batch"}, "4", "8Gi"},
		// The owning app of the dedicated bigdata-a pool.
		{"spark-etl", map[string]string{"app.kubernetes.io/name": "spark"}, "8", "32Gi"},
	}
	for _, j := range jobs {
		if _, err := c.BatchV1().Jobs(nsBatch).Create(ctx, &batchv1.Job{
			ObjectMeta: metav1.ObjectMeta{Name: j.name},
			Spec: batchv1.JobSpec{Template: func() corev1.PodTemplateSpec {
				t := podTemplate(j.labels, j.cpu, j.mem)
				t.Spec.RestartPolicy = corev1.RestartPolicyNever
				return t
			}()},
		}, metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	training := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "training", Labels: map[string]string{config.LabelHostGroup: "gpu", "app.kubernetes.io/name": "training"}},
		Spec:       podTemplate(nil, "16", "64Gi").Spec,
	}
	training.Spec.Containers[0].Resources.Limits["nvidia.com/gpu"] = resource.MustParse("4")
	if _, err := c.CoreV1().Pods(nsML).Create(ctx, training, metav1.CreateOptions{}); err != nil {
		return err
	}

	// Shared-GPU inference: a quarter of one card each; the GPU plugin
	// picks the card and writes it on the pod for the device plugin.
	for i := range 2 {
		inference := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{
				Name:        fmt.Sprintf("inference-%d", i),
				Labels:      map[string]string{config.LabelHostGroup: "gpu", "app.kubernetes.io/name": "inference"},
				Annotations: map[string]string{gpu.MilliAnnotation: "250"},
			},
			Spec: podTemplate(nil, "2", "8Gi").Spec,
		}
		if _, err := c.CoreV1().Pods(nsML).Create(ctx, inference, metav1.CreateOptions{}); err != nil {
			return err
		}
	}

	if err := d.escapeAttempts(ctx); err != nil {
		return err
	}
	if err := d.waitRunning(ctx, []string{nsWeb, nsBatch, nsML}, 10); err != nil {
		return err
	}
	if err := d.report(ctx, []string{nsWeb, nsBatch, nsML}); err != nil {
		return err
	}
	if err := d.nodeReport(ctx); err != nil {
		return err
	}
	return d.liveRatioChange(ctx)
}

// escapeAttempts sends pods of team-b that try to leave its host groups or
// use team-a's dedicated pool; each must be refused with its reason.
func (d *demo) escapeAttempts(ctx context.Context) error {
	attempts := []struct {
		what   string
		mutate func(*corev1.Pod)
	}{
		{"nodeName onto team-a's dedicated node", func(p *corev1.Pod) { p.Spec.NodeName = "bigdata-0" }},
		{"wildcard toleration", func(p *corev1.Pod) {
			p.Spec.Tolerations = []corev1.Toleration{{Operator: corev1.TolerationOpExists}}
		}},
		{"toleration for team-a's pool", func(p *corev1.Pod) {
			p.Spec.Tolerations = []corev1.Toleration{{Key: config.LabelDedicated, Operator: corev1.TolerationOpEqual, Value: "bigdata-a", Effect: corev1.TaintEffectNoSchedule}}
		}},
		{"nodeSelector for the batch group", func(p *corev1.Pod) {
			p.Spec.NodeSelector = map[string]string{config.LabelHostGroup: "batch"}
		}},
		{"no limits", func(p *corev1.Pod) { p.Spec.Containers[0].Resources = corev1.ResourceRequirements{} }},
	}
	fmt.Fprintln(d.out, "\nEscape attempts by tenant team-b (namespace "+nsML+"):")
	for i, a := range attempts {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("escape-%d", i)}, Spec: podTemplate(nil, "1", "1Gi").Spec}
		a.mutate(pod)
		_, err := d.cp.Client.CoreV1().Pods(nsML).Create(ctx, pod, metav1.CreateOptions{})
		if err == nil {
			return fmt.Errorf("escape attempt %q was admitted", a.what)
		}
		fmt.Fprintf(d.out, "  DENIED  %-38s %s\n", a.what, firstViolation(err.Error()))
	}
	return nil
}

// firstViolation shortens an admission error to its first policy message.
func firstViolation(msg string) string {
	if i := strings.Index(msg, "[HM-"); i >= 0 {
		msg = msg[i:]
	}
	if i := strings.Index(msg, "; ["); i >= 0 {
		msg = msg[:i]
	}
	if len(msg) > 110 {
		msg = msg[:107] + "..."
	}
	return msg
}

// waitRunning waits until at least want pods of the namespaces are bound
// and kwok reports them started.
func (d *demo) waitRunning(ctx context.Context, namespaces []string, want int) error {
	running := 0
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 90*time.Second, true, func(ctx context.Context) (bool, error) {
		running = 0
		for _, ns := range namespaces {
			pods, err := d.cp.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
			if err != nil {
				return false, nil
			}
			for _, p := range pods.Items {
				if p.Spec.NodeName != "" && (p.Status.Phase == corev1.PodRunning || p.Status.Phase == corev1.PodSucceeded) {
					running++
				}
			}
		}
		return running >= want, nil
	})
	if err != nil {
		return fmt.Errorf("%d of %d pods running: %w", running, want, err)
	}
	return nil
}

// report prints, per pod, what admission and scheduling did to it.
func (d *demo) report(ctx context.Context, namespaces []string) error {
	fmt.Fprintln(d.out, "\nWhat Harbormaster did (requests before -> after, host group, node and why):")
	tw := tabwriter.NewWriter(d.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  NAMESPACE\tPOD\tCPU REQUEST\tMEMORY REQUEST\tGROUP/POOL\tNODE\tSTATUS\tSCORE (RUNNER-UP)")
	for _, ns := range namespaces {
		pods, err := d.cp.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		sort.Slice(pods.Items, func(i, j int) bool { return pods.Items[i].Name < pods.Items[j].Name })
		for _, p := range pods.Items {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", ns, p.Name,
				requestChange(&p, corev1.ResourceCPU), requestChange(&p, corev1.ResourceMemory),
				placement(&p), orDash(p.Spec.NodeName), p.Status.Phase, scoreSummary(&p))
		}
	}
	return tw.Flush()
}

// nodeReport prints each node as kwok keeps it (Ready, the kubelet
// version kwok reports) with its simulated load and the demo's pods on it.
func (d *demo) nodeReport(ctx context.Context) error {
	podsOn := map[string]int{}
	for _, ns := range []string{nsWeb, nsBatch, nsML} {
		pods, err := d.cp.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		for _, p := range pods.Items {
			podsOn[p.Spec.NodeName]++
		}
	}
	fmt.Fprintln(d.out, "\nNodes (kubelets played by kwok; load and GPUs as the exporters report them):")
	tw := tabwriter.NewWriter(d.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  NODE\tGROUP/POOL\tSTATUS\tKUBELET\tCPU LOAD\tGPUS (DCGM)\tDEMO PODS")
	load := demoLoad()
	for _, n := range d.nodes {
		node, err := d.cp.Client.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		group := node.Labels[config.LabelHostGroup]
		if pool := node.Labels[config.LabelDedicated]; pool != "" {
			group += ", pool " + pool
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%.0f%%\t%s\t%d\n", n.Name, group, nodeStatus(node),
			orDash(node.Status.NodeInfo.KubeletVersion), load[n.Name]*100, gpuSummary(n), podsOn[n.Name])
	}
	return tw.Flush()
}

// nodeStatus is kubectl's STATUS column: Ready or NotReady.
func nodeStatus(n *corev1.Node) string {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
			return "Ready"
		}
	}
	return "NotReady"
}

// liveRatioChange edits the ConfigMap and shows the next pod follows. The
// webhook runs as a process, so the demo sees the new ratio as any client
// would: in the requests of a pod it creates (dry run until it shows).
func (d *demo) liveRatioChange(ctx context.Context) error {
	edited := strings.Replace(d.config, "namespaces: {}", "namespaces:\n    team-a-web: {cpu: 4, memory: 1.5}", 1)
	if edited == d.config {
		return fmt.Errorf("example configuration has no empty overcommit.namespaces to edit")
	}
	fmt.Fprintln(d.out, "\nLive ratio change: overcommit.namespaces.team-a-web = {cpu: 4, memory: 1.5} in the ConfigMap ...")
	if err := framework.ApplyConfig(ctx, d.cp, edited); err != nil {
		return err
	}
	// Limit 2 CPUs at the new ratio 4.
	want := resource.MustParse("500m")
	webPod := func(name string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app.kubernetes.io/name": "web"}},
			Spec:       podTemplate(nil, "2", "2Gi").Spec,
		}
	}
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		probe, err := d.cp.Client.CoreV1().Pods(nsWeb).Create(ctx, webPod("ratio-probe"), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			return false, nil
		}
		got := probe.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU]
		return got.Cmp(want) == 0, nil
	})
	if err != nil {
		return fmt.Errorf("the webhook did not apply the edited ConfigMap: %w", err)
	}
	pod, err := d.cp.Client.CoreV1().Pods(nsWeb).Create(ctx, webPod("web-after-edit"), metav1.CreateOptions{})
	if err != nil {
		return err
	}
	fmt.Fprintf(d.out, "  next pod %s/%s: cpu %s, memory %s (no restart)\n", nsWeb, pod.Name,
		requestChange(pod, corev1.ResourceCPU), requestChange(pod, corev1.ResourceMemory))
	return nil
}

func podTemplate(labels map[string]string, cpu, memory string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: labels},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "app", Image: "registry.k8s.io/pause:3.10",
			Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{
				corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(memory),
			}},
		}}},
	}
}

// requestChange renders the first container's request as "before -> after"
// from the overcommit annotation's recorded original.
func requestChange(p *corev1.Pod, res corev1.ResourceName) string {
	c := p.Spec.Containers[0]
	after := c.Resources.Requests[res]
	before := after
	if rec, err := mutation.ParseOvercommitRecord(p.Annotations[config.AnnotationOvercommit]); err == nil {
		if s, ok := rec.Originals["containers/"+c.Name][res]; ok {
			if q, err := resource.ParseQuantity(s); err == nil {
				before = q
			}
		}
	}
	if before.Cmp(after) == 0 {
		return quantity(after) + " (kept)"
	}
	return quantity(before) + " -> " + quantity(after)
}

// quantity renders byte counts that are no whole number of MiB (computed
// memory requests) in MiB, so the table stays readable.
func quantity(q resource.Quantity) string {
	const mi = 1 << 20
	if v := q.Value(); v > mi && v%mi != 0 {
		return fmt.Sprintf("%.1fMi", float64(v)/mi)
	}
	return q.String()
}

// placement names the host group or dedicated pool a pod was confined to,
// read from the requirements admission added.
func placement(p *corev1.Pod) string {
	if p.Spec.Affinity == nil || p.Spec.Affinity.NodeAffinity == nil || p.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return "-"
	}
	for _, term := range p.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
		for _, r := range term.MatchExpressions {
			if r.Operator != corev1.NodeSelectorOpIn {
				continue
			}
			switch r.Key {
			case config.LabelDedicated:
				return "pool " + strings.Join(r.Values, ",")
			case config.LabelHostGroup:
				return strings.Join(r.Values, ",")
			}
		}
	}
	return "-"
}

// scoreSummary reads the load-aware plugin's explanation annotation.
func scoreSummary(p *corev1.Pod) string {
	if cards, ok := p.Annotations[gpu.CardsAnnotation]; ok {
		return "gpu cards " + cards + "; " + loadScoreSummary(p)
	}
	return loadScoreSummary(p)
}

// loadScoreSummary reads the load-aware plugin's explanation annotation.
func loadScoreSummary(p *corev1.Pod) string {
	raw, ok := p.Annotations[loadaware.ScoreAnnotation]
	if !ok {
		return "-"
	}
	var e loadaware.Explanation
	if err := json.Unmarshal([]byte(raw), &e); err != nil {
		return "?"
	}
	s := fmt.Sprintf("%d cpu=%s", e.Score, percent(e.CPU))
	if e.RunnerUp != nil {
		s += fmt.Sprintf(" (%s %d cpu=%s)", e.RunnerUp.Node, e.RunnerUp.Score, percent(e.RunnerUp.CPU))
	}
	return s
}

func percent(f *float64) string {
	if f == nil {
		return "?"
	}
	return fmt.Sprintf("%.0f%%", *f*100)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
