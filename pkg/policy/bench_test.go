package policy

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"runtime/metrics"
	"slices"
	"testing"
	"testing/fstest"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/harbormaster-dev/harbormaster/internal/stack"
	"github.com/harbormaster-dev/harbormaster/pkg/config"
	"github.com/harbormaster-dev/harbormaster/pkg/mutation"
	"github.com/harbormaster-dev/harbormaster/policies"
)

// The benchmarks below only use the package's exported API and the shared
// test helpers, so the same file runs unchanged against an older engine
// (see docs/benchmarks-policy.md for the before/after procedure).

// BenchmarkEvaluate judges a realistic compliant tenant pod against the
// fixture bundle (7 rules over 3 areas plus a helper library); compare with
// BenchmarkEvaluateEmptyBundle, run in the same invocation, for the cost of
// the rules themselves versus input conversion and OPA's fixed overhead.
func BenchmarkEvaluate(b *testing.B) {
	benchEvaluate(b, "testdata/bundle")
}

// BenchmarkEvaluateEmptyBundle is the baseline: one package whose single
// rule never fires.
func BenchmarkEvaluateEmptyBundle(b *testing.B) {
	benchEvaluate(b, "testdata/empty")
}

func benchEvaluate(b *testing.B, dir string) {
	engine := NewEngine(loadDir(b, dir, LoadOptions{}), EngineOptions{})
	in := tenantInput(b, realisticPod(), testConfig())
	measureEvaluate(b, engine, in, true)
}

// BenchmarkEvaluateRealPolicies judges what the webhook judges most: a
// tenant web pod as the mutating webhook left it, created by the ReplicaSet
// controller, against the embedded policies. The configuration grows with
// the number of tenants (two host groups each, a dedicated pool for every
// tenth); tenants=1000 must stay within 1.2x of tenants=10. The pod grows
// too, as it does in a cluster: its NotIn fence names every foreign pool.
func BenchmarkEvaluateRealPolicies(b *testing.B) {
	bundle := loadEmbedded(b, nil)
	for _, tenants := range []int{10, 1000} {
		b.Run(fmt.Sprintf("tenants=%d", tenants), func(b *testing.B) {
			cfg := scaledConfig(tenants)
			in := tenantInput(b, mutatedPod(b, cfg, benchPod()), cfg)
			measureEvaluate(b, NewEngine(bundle, EngineOptions{}), in, true)
			b.ReportMetric(float64(len(in.Request.Object.Raw)), "pod-bytes")
		})
	}
}

// BenchmarkEvaluateRealPoliciesRequests covers the other request shapes the
// webhook sees, at tenants=1000: an UPDATE of that pod changing one label
// (everything is compared with oldObject), a Deployment CREATE, a pod in an
// exempt namespace, and a denied pod (violation messages are built).
func BenchmarkEvaluateRealPoliciesRequests(b *testing.B) {
	bundle := loadEmbedded(b, nil)
	cfg := scaledConfig(1000)
	pod := mutatedPod(b, cfg, benchPod())
	cases := []struct {
		name    string
		input   func(b *testing.B) Input
		allowed bool
	}{
		{"pod-update", func(b *testing.B) Input {
			in := tenantInput(b, pod, cfg)
			newPod := pod.DeepCopy()
			newPod.Labels["version"] = "2"
			upd := tenantInput(b, newPod, cfg)
			upd.Request.Operation = "UPDATE"
			upd.Request.OldObject = in.Request.Object
			return upd
		}, true},
		{"deployment-create", func(b *testing.B) Input {
			return deploymentInput(b, benchPod(), cfg)
		}, true},
		{"exempt-namespace", func(b *testing.B) Input {
			in := tenantInput(b, benchPod(), cfg)
			in.Namespace = Namespace{Name: "kube-system"}
			return in
		}, true},
		{"denied-pod", func(b *testing.B) Input {
			bad := pod.DeepCopy()
			bad.Spec.NodeName = "node-7"
			bad.Spec.Containers[0].Image = "docker.io/attacker/miner:1"
			bad.Spec.Tolerations = append(bad.Spec.Tolerations, corev1.Toleration{Operator: corev1.TolerationOpExists})
			return tenantInput(b, bad, cfg)
		}, false},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			measureEvaluate(b, NewEngine(bundle, EngineOptions{}), c.input(b), c.allowed)
		})
	}
}

// BenchmarkEvaluateNewGoroutine is BenchmarkEvaluateRealPolicies at
// tenants=10 with every evaluation on a new goroutine, as an HTTP/2 server
// runs each admission request: the goroutine's stack starts small, and is
// grown once before the evaluation as the policy webhook's handler does.
func BenchmarkEvaluateNewGoroutine(b *testing.B) {
	cfg := scaledConfig(10)
	in := tenantInput(b, mutatedPod(b, cfg, benchPod()), cfg)
	engine := NewEngine(loadEmbedded(b, nil), EngineOptions{})
	measure(b, func() (Decision, error) {
		type result struct {
			d   Decision
			err error
		}
		done := make(chan result, 1)
		go func() {
			// As the policy webhook's handler does first.
			stack.Grow(EvalStackBytes)
			d, err := engine.Evaluate(context.Background(), in)
			done <- result{d, err}
		}()
		r := <-done
		return r.d, r.err
	}, true)
}

// BenchmarkEvaluateArrivals is BenchmarkEvaluateRealPolicies with the
// requests arriving at a fixed rate, as they reach a webhook, instead of
// back to back. Back to back, the loop runs one core flat out and the
// collector's marking overlaps every evaluation it can; at a rate, it
// also runs between requests. Rates per second: 200 is about the demo's
// pod creations under load (docs/benchmarks.md, soak: 271 pods/s through
// the whole stack), 1000 keeps one core about half busy.
func BenchmarkEvaluateArrivals(b *testing.B) {
	bundle := loadEmbedded(b, nil)
	for _, tenants := range []int{10, 1000} {
		cfg := scaledConfig(tenants)
		in := tenantInput(b, mutatedPod(b, cfg, benchPod()), cfg)
		engine := NewEngine(bundle, EngineOptions{})
		ctx := context.Background()
		for _, rate := range []int{200, 1000} {
			b.Run(fmt.Sprintf("tenants=%d/per-second=%d", tenants, rate), func(b *testing.B) {
				measureArriving(b, func() (Decision, error) { return engine.Evaluate(ctx, in) }, true, time.Second/time.Duration(rate))
			})
		}
	}
}

// BenchmarkEvaluateConfigChange is the first evaluation after the
// configuration changed (a new *config.Config every iteration): it pays for
// converting the configuration, which later evaluations reuse.
func BenchmarkEvaluateConfigChange(b *testing.B) {
	bundle := loadEmbedded(b, nil)
	for _, tenants := range []int{10, 1000} {
		b.Run(fmt.Sprintf("tenants=%d", tenants), func(b *testing.B) {
			cfg := scaledConfig(tenants)
			in := tenantInput(b, mutatedPod(b, cfg, benchPod()), cfg)
			engine := NewEngine(bundle, EngineOptions{})
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				fresh := *cfg
				in.Config = &fresh
				if d, err := engine.Evaluate(ctx, in); err != nil || !d.Allowed {
					b.Fatal(err, d.Violations)
				}
			}
		})
	}
}

// BenchmarkEvaluateRules shows how time grows with the number of rules:
// the empty baseline (1 rule), each area alone with the helper library,
// and the whole bundle, on the same tenants=10 pod.
func BenchmarkEvaluateRules(b *testing.B) {
	cfg := scaledConfig(10)
	in := tenantInput(b, mutatedPod(b, cfg, benchPod()), cfg)
	areas := []string{"namespaces", "registries", "opt_outs", "dedicated_hosts", "host_groups", "resources"}
	type variant struct {
		name   string
		bundle *Bundle
	}
	variants := []variant{{"empty", loadDir(b, "testdata/empty", LoadOptions{})}}
	for _, area := range areas {
		variants = append(variants, variant{area, loadEmbedded(b, []string{area + ".rego"})})
	}
	variants = append(variants, variant{"all", loadEmbedded(b, nil)})
	for _, v := range variants {
		b.Run(fmt.Sprintf("%s/rules=%d", v.name, len(v.bundle.Catalog())), func(b *testing.B) {
			measureEvaluate(b, NewEngine(v.bundle, EngineOptions{}), in, true)
		})
	}
}

// measureEvaluate is the benchmark loop: it times every evaluation and
// reports the median, 95th, 98th and 99th percentiles besides the mean
// (ns/op), since a webhook's budget is about its tail, and the process CPU
// time per evaluation (cpu-ns/op), which other load on the machine
// disturbs less.
func measureEvaluate(b *testing.B, engine *Engine, in Input, wantAllowed bool) {
	b.Helper()
	ctx := context.Background()
	measure(b, func() (Decision, error) { return engine.Evaluate(ctx, in) }, wantAllowed)
}

// measure is measureEvaluate's loop around any way of evaluating, back to
// back.
func measure(b *testing.B, evaluate func() (Decision, error), wantAllowed bool) {
	b.Helper()
	measureArriving(b, evaluate, wantAllowed, 0)
}

// measureArriving is measure with requests arriving every interval (open
// loop; 0: back to back). A request that arrives while the previous one is
// still evaluated waits, and its latency counts from its arrival, so a
// slow evaluation also shows in the ones queued behind it; otherwise it
// counts from when the loop woke for it, leaving out the sleep's timer
// slack, which is the benchmark's, not the evaluation's.
func measureArriving(b *testing.B, evaluate func() (Decision, error), wantAllowed bool, interval time.Duration) {
	b.Helper()
	// Warm the config cache as the webhook's steady state does.
	if d, err := evaluate(); err != nil {
		b.Fatal(err)
	} else if d.Allowed != wantAllowed {
		b.Fatalf("allowed = %v, want %v: %v", d.Allowed, wantAllowed, d.Violations)
	}
	samples := make([]time.Duration, 0, 1<<16)
	gc := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}, {Name: "/gc/heap/live:bytes"}}
	metrics.Read(gc)
	cyclesStart := gc[0].Value.Uint64()
	cpuStart, cpuOK := processCPUTime()
	b.ReportAllocs()
	var arrival time.Time
	queued := 0
	for b.Loop() {
		start := time.Now()
		if interval > 0 {
			if arrival.IsZero() {
				arrival = start
			} else {
				arrival = arrival.Add(interval)
			}
			if wait := arrival.Sub(start); wait > 0 {
				time.Sleep(wait)
				start = time.Now()
			} else if wait < 0 {
				start = arrival
				queued++
			}
		}
		d, err := evaluate()
		samples = append(samples, time.Since(start))
		if err != nil {
			b.Fatal(err)
		}
		if d.Allowed != wantAllowed {
			b.Fatalf("allowed = %v, want %v: %v", d.Allowed, wantAllowed, d.Violations)
		}
	}
	b.StopTimer()
	if cpuEnd, ok := processCPUTime(); ok && cpuOK {
		b.ReportMetric(float64(cpuEnd-cpuStart)/float64(len(samples)), "cpu-ns/op")
	}
	// The collector's cadence sets the tail (see
	// BenchmarkEvaluateDuringCollection): evaluations per cycle and the
	// live heap they are measured against, to compare with the webhook
	// process's (docs/benchmarks.md).
	if metrics.Read(gc); gc[0].Value.Uint64() > cyclesStart {
		b.ReportMetric(float64(len(samples))/float64(gc[0].Value.Uint64()-cyclesStart), "evals/gc")
	}
	b.ReportMetric(float64(gc[1].Value.Uint64())/(1<<20), "live-MiB")
	if interval > 0 {
		b.ReportMetric(float64(queued)/float64(len(samples))*100, "%-queued")
	}
	slices.Sort(samples)
	b.ReportMetric(float64(percentile(samples, 50)), "p50-ns")
	b.ReportMetric(float64(percentile(samples, 95)), "p95-ns")
	b.ReportMetric(float64(percentile(samples, 98)), "p98-ns")
	b.ReportMetric(float64(percentile(samples, 99)), "p99-ns")
}

// percentile of sorted samples, nearest rank.
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100
	return sorted[max(i-1, 0)]
}

// loadEmbedded loads the embedded policies: all of them (only nil), or the
// helper library with the named policy files.
func loadEmbedded(tb testing.TB, only []string) *Bundle {
	tb.Helper()
	var fsys fs.FS = policies.FS
	if only != nil {
		sub := fstest.MapFS{}
		for _, name := range append([]string{"lib/lib.rego"}, only...) {
			data, err := fs.ReadFile(policies.FS, name)
			if err != nil {
				tb.Fatal(err)
			}
			sub[name] = &fstest.MapFile{Data: data}
		}
		fsys = sub
	}
	b, err := Load(context.Background(), fsys, LoadOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// scaledConfig is a cluster of n tenants: team-a (the benchmarked pods'
// tenant, host groups general and batch, a dedicated pool team-a-db) and
// n-1 others with two host groups each and a dedicated pool for every
// tenth, half of them app-restricted.
func scaledConfig(n int) *config.Config {
	maxGPUs, zero := int64(2), int64(0)
	hg := func(name string) config.HostGroup {
		return config.HostGroup{NodeSelector: config.NodeSelector{MatchLabels: map[string]string{config.LabelHostGroup: name}}}
	}
	c := &config.Config{
		APIVersion: config.APIVersion,
		Kind:       config.Kind,
		HostGroups: map[string]config.HostGroup{"general": hg("general"), "batch": hg("batch")},
		Tenants: map[string]config.Tenant{"team-a": {
			HostGroups:        []string{"general", "batch"},
			DefaultHostGroup:  "general",
			MaxGPUsPerPod:     &maxGPUs,
			AllowedGPUModels:  []string{"NVIDIA-A100-SXM4-80GB", "NVIDIA-H100-80GB-HBM3"},
			AllowedRegistries: []string{"registry.example.com/team-a/", "docker.io/library/"},
		}},
		DedicatedPools: map[string]config.DedicatedPool{
			"team-a-db": {Tenant: "team-a", Placement: config.PlacementPreferred},
		},
		ExemptNamespaces: []string{"monitoring", "logging"},
		Privileged:       config.Privileged{Users: []string{"alice@example.com"}, Groups: []string{"platform-admins"}},
	}
	for i := 1; i < n; i++ {
		name := fmt.Sprintf("tenant-%04d", i)
		web, batch := name+"-web", name+"-batch"
		c.HostGroups[web] = hg(web)
		gpu := hg(batch)
		gpu.NodeSelector.MatchExpressions = []corev1.NodeSelectorRequirement{{
			Key: "topology.kubernetes.io/zone", Operator: corev1.NodeSelectorOpIn, Values: []string{"eu-1a", "eu-1b"},
		}}
		c.HostGroups[batch] = gpu
		t := config.Tenant{HostGroups: []string{web, batch}, DefaultHostGroup: web, AllowedRegistries: []string{"registry.example.com/" + name + "/"}}
		if i%3 == 0 {
			t.MaxGPUsPerPod = &zero
		}
		c.Tenants[name] = t
		if i%10 == 0 {
			pool := config.DedicatedPool{Tenant: name, Placement: config.PlacementRequired}
			if i%20 == 0 {
				pool.App = "spark"
			}
			c.DedicatedPools[name+"-pool"] = pool
		}
	}
	c.SetDefaults()
	return c
}

// benchPod is realisticPod as the API server hands it to admission
// webhooks: with the fields it defaults, the service account token volume
// and the default not-ready/unreachable tolerations. Mutated, it is about
// 4 KiB of JSON with 10 tenants.
func benchPod() *corev1.Pod {
	pod := realisticPod()
	grace, expiry, mode := int64(30), int64(3607), int32(420)
	priority, links := int32(0), true
	preempt := corev1.PreemptLowerPriority
	spec := &pod.Spec
	spec.RestartPolicy = corev1.RestartPolicyAlways
	spec.TerminationGracePeriodSeconds = &grace
	spec.DNSPolicy = corev1.DNSClusterFirst
	spec.DeprecatedServiceAccount = spec.ServiceAccountName
	spec.SecurityContext = &corev1.PodSecurityContext{}
	spec.SchedulerName = corev1.DefaultSchedulerName
	spec.Priority = &priority
	spec.EnableServiceLinks = &links
	spec.PreemptionPolicy = &preempt
	spec.Tolerations = []corev1.Toleration{
		{Key: "node.kubernetes.io/not-ready", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptrTo(int64(300))},
		{Key: "node.kubernetes.io/unreachable", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptrTo(int64(300))},
	}
	spec.Volumes = append(spec.Volumes, corev1.Volume{Name: "kube-api-access-x7k2p", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
		DefaultMode: &mode,
		Sources: []corev1.VolumeProjection{
			{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{ExpirationSeconds: &expiry, Path: "token"}},
			{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"}, Items: []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}}},
			{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{{Path: "namespace", FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.namespace"}}}}},
		},
	}}})
	spec.Containers[0].Env = append(spec.Containers[0].Env,
		corev1.EnvVar{Name: "HTTP_PORT", Value: "8080"},
		corev1.EnvVar{Name: "CACHE_URL", Value: "redis://cache.team-a-dev.svc:6379/0"},
		corev1.EnvVar{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.name"}}},
	)
	for _, list := range [][]corev1.Container{spec.InitContainers, spec.Containers} {
		for i := range list {
			c := &list[i]
			c.ImagePullPolicy = corev1.PullIfNotPresent
			c.TerminationMessagePath = corev1.TerminationMessagePathDefault
			c.TerminationMessagePolicy = corev1.TerminationMessageReadFile
			c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "kube-api-access-x7k2p", ReadOnly: true, MountPath: "/var/run/secrets/kubernetes.io/serviceaccount"})
		}
	}
	return pod
}

func ptrTo[T any](v T) *T { return &v }

// mutatedPod is pod as the mutating webhook leaves it in team-a's
// namespace: confined to its host group, fenced off foreign pools,
// tolerating its own pool, requests overcommitted.
func mutatedPod(tb testing.TB, cfg *config.Config, pod *corev1.Pod) *corev1.Pod {
	tb.Helper()
	res := mutation.MutatePod(cfg, pod, mutation.Input{Namespace: pod.Namespace, NamespaceLabels: tenantLabels(), OwnNamespace: "harbormaster"})
	if res.Skipped != "" || res.Pod.Spec.Affinity == nil || res.Pod.Spec.Affinity.NodeAffinity == nil {
		tb.Fatalf("pod was not confined: skipped %q, applied %v", res.Skipped, res.Applied)
	}
	res.Pod.ManagedFields = managedFields(tb)
	return res.Pod
}

// managedFields are what the API server records for benchPod created by
// the ReplicaSet controller, before admission: testdata/managed-fields.json
// is the record kube-apiserver v1.34 wrote for a dry-run create of
// benchPod (namespace and images as in the demo) with field manager
// kube-controller-manager, against `make demo`'s control plane. Every
// object admission reviews carries them; they are half of the pod's JSON.
func managedFields(tb testing.TB) []metav1.ManagedFieldsEntry {
	tb.Helper()
	raw, err := os.ReadFile("testdata/managed-fields.json")
	if err != nil {
		tb.Fatal(err)
	}
	var entries []metav1.ManagedFieldsEntry
	if err := json.Unmarshal(raw, &entries); err != nil {
		tb.Fatal(err)
	}
	return entries
}

// deploymentInput is a tenant developer creating a Deployment whose
// template is pod (not mutated: templates never are).
func deploymentInput(tb testing.TB, pod *corev1.Pod, cfg *config.Config) Input {
	tb.Helper()
	replicas := int32(3)
	dep := &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: pod.Namespace, Labels: map[string]string{"app.kubernetes.io/name": "web"}},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/name": "web"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: pod.ObjectMeta, Spec: pod.Spec},
		},
	}
	dep.Spec.Template.OwnerReferences = nil
	raw, err := json.Marshal(dep)
	if err != nil {
		tb.Fatal(err)
	}
	in := tenantInput(tb, pod, cfg)
	in.Request.Kind = metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}
	in.Request.Resource = metav1.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
	in.Request.Name = dep.Name
	in.Request.UserInfo = authenticationv1.UserInfo{Username: "dev@example.com", Groups: []string{"team-a-devs", "system:authenticated"}}
	in.Request.Object.Raw = raw
	return in
}

// BenchmarkEvaluateDuringCollection splits the 10-tenant pod's evaluations
// by whether a garbage collection cycle ended during them (runtime/metrics
// counts cycles cheaply), and reports the median of each group: how much
// the collector's marking slows an evaluation it overlaps, which is what
// sets p99.
func BenchmarkEvaluateDuringCollection(b *testing.B) {
	cfg := scaledConfig(10)
	in := tenantInput(b, mutatedPod(b, cfg, benchPod()), cfg)
	engine := NewEngine(loadEmbedded(b, nil), EngineOptions{})
	ctx := context.Background()
	if _, err := engine.Evaluate(ctx, in); err != nil {
		b.Fatal(err)
	}
	cycles := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}
	// The collector's CPU time, and the part of it evaluations paid as mark
	// assists: what is left is background marking and pauses.
	gcCPU := []metrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}, {Name: "/cpu/classes/gc/mark/assist:cpu-seconds"}}
	metrics.Read(gcCPU)
	gcStart, assistStart := gcCPU[0].Value.Float64(), gcCPU[1].Value.Float64()
	var during, clear []time.Duration
	for b.Loop() {
		metrics.Read(cycles)
		before := cycles[0].Value.Uint64()
		start := time.Now()
		if _, err := engine.Evaluate(ctx, in); err != nil {
			b.Fatal(err)
		}
		took := time.Since(start)
		if metrics.Read(cycles); cycles[0].Value.Uint64() != before {
			during = append(during, took)
		} else {
			clear = append(clear, took)
		}
	}
	metrics.Read(gcCPU)
	n := float64(len(during) + len(clear))
	b.ReportMetric((gcCPU[0].Value.Float64()-gcStart)*1e9/n, "gc-cpu-ns/op")
	b.ReportMetric((gcCPU[1].Value.Float64()-assistStart)*1e9/n, "assist-ns/op")
	slices.Sort(during)
	slices.Sort(clear)
	b.ReportMetric(float64(len(during))/n*100, "%-with-cycle-end")
	b.ReportMetric(float64(percentile(during, 50)), "p50-with-cycle-end-ns")
	b.ReportMetric(float64(percentile(clear, 50)), "p50-without-ns")
}

// BenchmarkEvaluateCallgrind is BenchmarkEvaluateRealPolicies at
// tenants=10 without the evaluation timeout, for counting instructions
// under valgrind --tool=callgrind (an evaluation there takes longer than
// DefaultEvalTimeout); see docs/benchmarks.md, fifth round.
func BenchmarkEvaluateCallgrind(b *testing.B) {
	cfg := scaledConfig(10)
	in := tenantInput(b, mutatedPod(b, cfg, benchPod()), cfg)
	engine := NewEngine(loadEmbedded(b, nil), EngineOptions{Timeout: time.Hour})
	ctx := context.Background()
	for b.Loop() {
		if d, err := engine.Evaluate(ctx, in); err != nil || !d.Allowed {
			b.Fatal(err, d.Violations)
		}
	}
}
