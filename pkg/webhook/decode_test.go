package webhook

import (
	"encoding/json"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/randfill"

	"github.com/harbormaster-dev/harbormaster/pkg/config"
	"github.com/harbormaster-dev/harbormaster/pkg/mutation"
)

// referencePod is the reference decoding: the API server's own
// (sigs.k8s.io/json, case-sensitive field names). The API server sends the
// object re-encoded in its canonical form, so keys always match exactly.
func referencePod(raw []byte) (*corev1.Pod, error) {
	pod := &corev1.Pod{}
	return pod, kjson.UnmarshalCaseSensitivePreserveInts(raw, pod)
}

// TestDecodePodMatchesAPIServer fills pods at random in every field,
// encodes them as the API server would and requires decodePod to produce
// exactly what the API server's decoder produces.
func TestDecodePodMatchesAPIServer(t *testing.T) {
	filler := podFiller(42)
	for i := range 500 {
		var pod corev1.Pod
		filler.Fill(&pod)
		raw, err := json.Marshal(&pod)
		require.NoError(t, err)
		want, err := referencePod(raw)
		require.NoError(t, err)
		got, err := decodePod(raw)
		require.NoError(t, err, "pod %d: %s", i, raw)
		require.Equal(t, decodedFields(want), got, "pod %d: %s", i, raw)
	}
}

// FuzzDecodePod: for any pod the API server's decoder accepts, decodePod
// decodes the API server's canonical re-encoding of it (what a webhook
// receives: the API server never forwards the client's bytes) to the same
// pod. The seeds cover JSON corners: escapes, case, duplicates, numbers.
func FuzzDecodePod(f *testing.F) {
	f.Add(rawPodOfReview(f))
	for _, seed := range []string{
		`{"metadata":{"name":"a","labels":{"x":"y"}},"spec":{"containers":[{"name":"c","resources":{"limits":{"cpu":"2"}}}]}}`,
		`{"metadata":{"name":"\u00e9\ud83d\ude00\\\"","annotations":{"k":"v\n\u2028<>&"}},"spec":{"priority":-5,"tolerations":[{"operator":"Exists"}]}}`,
		`{"Metadata":{"Name":"upper"},"SPEC":{"nodeName":"n"}}`,
		`{"metadata":{"name":"a","name":"b"},"spec":{"containers":[],"containers":[{"name":"x"}]}}`,
		`{"spec":{"terminationGracePeriodSeconds":30,"activeDeadlineSeconds":1e3}}`,
		`{"spec":{"affinity":{"nodeAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[{"matchExpressions":[{"key":"k","operator":"In","values":["a","b"]}]}]}}}}}`,
		`{"spec":{"containers":[{"name":"c","ports":[{"containerPort":80,"protocol":"TCP"}],"livenessProbe":{"httpGet":{"port":"http"}}}]}}`,
		`{"metadata":{"creationTimestamp":"2026-11-28T17:00:00Z","ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"r","uid":"u","controller":true}]}}`,
		`{"spec":{"overhead":{"cpu":"250m"},"resources":{"requests":{"memory":"1.5Gi"}}},"status":{"phase":"Pending"}}`,
		`{"metadata":null,"spec":{"containers":null}}`,
		"{\"metadata\":{\"name\":\"\xff\xfe invalid utf-8\"}}",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		accepted, err := referencePod(raw)
		if err != nil {
			return // the API server rejects it before admission
		}
		sent, err := json.Marshal(accepted)
		require.NoError(t, err)
		want, err := referencePod(sent)
		require.NoError(t, err)
		got, err := decodePod(sent)
		require.NoError(t, err, "%s", sent)
		require.Equal(t, decodedFields(want), got, "%s", sent)
	})
}

func rawPodOfReview(tb testing.TB) []byte {
	var review struct {
		Request struct {
			Object json.RawMessage `json:"object"`
		} `json:"request"`
	}
	require.NoError(tb, json.Unmarshal(admissionReviewBody(tb), &review))
	return review.Request.Object
}

// decodedFields keeps of a fully decoded pod exactly the fields of
// admittedPod.
func decodedFields(full *corev1.Pod) *corev1.Pod {
	pod := &corev1.Pod{}
	pod.Name, pod.GenerateName, pod.Namespace = full.Name, full.GenerateName, full.Namespace
	pod.Labels, pod.Annotations = full.Labels, full.Annotations
	trim := func(cs []corev1.Container) []corev1.Container {
		if cs == nil {
			return nil
		}
		out := make([]corev1.Container, len(cs))
		for i, c := range cs {
			out[i] = corev1.Container{Name: c.Name, Resources: c.Resources}
		}
		return out
	}
	pod.Spec.InitContainers, pod.Spec.Containers = trim(full.Spec.InitContainers), trim(full.Spec.Containers)
	pod.Spec.Resources, pod.Spec.Affinity, pod.Spec.Tolerations = full.Spec.Resources, full.Spec.Affinity, full.Spec.Tolerations
	pod.Spec.TopologySpreadConstraints = full.Spec.TopologySpreadConstraints
	return pod
}

// podFiller fills every field of a pod at random, with valid quantities and
// managed fields so that the pod encodes.
func podFiller(seed int64) *randfill.Filler {
	quantityFormats := []resource.Format{resource.DecimalSI, resource.BinarySI, resource.DecimalExponent}
	return randfill.NewWithSeed(seed).NilChance(0.2).NumElements(0, 3).Funcs(
		func(q *resource.Quantity, c randfill.Continue) {
			*q = *resource.NewScaledQuantity(c.Int63n(1<<40), resource.Scale(c.Intn(13)-6))
			q.Format = quantityFormats[c.Intn(len(quantityFormats))]
		},
		func(f *metav1.FieldsV1, c randfill.Continue) {
			f.Raw = []byte(`{"f:metadata":{"f:labels":{}}}`)
		},
	)
}

// TestDecodedFieldsSuffice: the rules answer a pod decoded with only the
// admittedPod fields, mutated in place and patched from its fields as they
// were (the handler's path), exactly as the pure rules answer the full pod:
// same patch, rules, skips and warnings. Every other field is random, while the fields the rules look at
// are drawn so that every rule applies in some of the pods.
func TestDecodedFieldsSuffice(t *testing.T) {
	cfg, err := config.Parse([]byte(testConfig + `  team-b: {hostGroups: [general]}
dedicatedPools:
  web-a: {tenant: team-a, app: web}
  cache-b: {tenant: team-b}
`))
	require.NoError(t, err)
	in := mutation.Input{Namespace: "web", NamespaceLabels: map[string]string{config.LabelTenant: "team-a"}}
	filler := podFiller(7)
	rng := rand.New(rand.NewPCG(7, 8))
	applied := map[string]int{}
	for i := range 2000 {
		var full corev1.Pod
		filler.Fill(&full)
		full.Namespace = "web"
		if rng.IntN(2) == 0 {
			full.Labels = map[string]string{"app.kubernetes.io/name": "web", "app.kubernetes.io/instance": "shop"}
		}
		if rng.IntN(3) == 0 {
			full.Spec.Affinity = nil
		}
		if rng.IntN(3) == 0 {
			full.Annotations = nil
		}
		if rng.IntN(3) == 0 {
			full.Spec.Resources = &corev1.ResourceRequirements{Limits: corev1.ResourceList{
				corev1.ResourceCPU: *resource.NewMilliQuantity(rng.Int64N(8000)+1, resource.DecimalSI)}}
		}
		switch rng.IntN(4) {
		case 0:
			full.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{TopologyKey: corev1.LabelHostname,
				LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/name": "web"}}}}
		case 1:
			full.Spec.Tolerations = nil
		}
		for _, containers := range [][]corev1.Container{full.Spec.InitContainers, full.Spec.Containers} {
			for j := range containers {
				if rng.IntN(4) != 0 {
					containers[j].Resources = corev1.ResourceRequirements{Limits: corev1.ResourceList{
						corev1.ResourceCPU:    *resource.NewMilliQuantity(rng.Int64N(8000)+1, resource.DecimalSI),
						corev1.ResourceMemory: *resource.NewQuantity(rng.Int64N(1<<34)+1, resource.BinarySI),
					}}
				}
			}
		}
		// As the handler does: the trimmed pod mutated in place, patched
		// from its fields as they were; against the pure rules on the full
		// pod and the generic patch.
		trimmed := decodedFields(&full)
		want := mutation.MutatePod(cfg, &full, in)
		original := mutation.WritableFieldsOf(trimmed)
		got := mutation.MutatePodOwned(cfg, trimmed, in)
		require.Equal(t, want.Applied, got.Applied, "pod %d", i)
		require.Equal(t, want.Skipped, got.Skipped, "pod %d", i)
		require.Equal(t, want.Warnings, got.Warnings, "pod %d", i)
		wantPatch, err := JSONPatch(&full, want.Pod)
		require.NoError(t, err)
		gotPatch, ok := podPatch(original, got.Pod)
		require.True(t, ok, "pod %d", i)
		if len(gotPatch) == 0 {
			gotPatch = nil
		}
		require.Equal(t, wantPatch, gotPatch, "pod %d", i)
		for _, rule := range got.Applied {
			applied[rule]++
		}
	}
	for _, rule := range []string{mutation.RuleOvercommit, mutation.RuleAntiAffinity, mutation.RuleHostGroup, mutation.RuleDedicated} {
		require.Greater(t, applied[rule], 100, "rule %s must apply in many of the pods: %v", rule, applied)
	}
}
