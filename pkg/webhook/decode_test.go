package webhook

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/randfill"
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
	quantityFormats := []resource.Format{resource.DecimalSI, resource.BinarySI, resource.DecimalExponent}
	filler := randfill.NewWithSeed(42).NilChance(0.2).NumElements(0, 3).Funcs(
		func(q *resource.Quantity, c randfill.Continue) {
			*q = *resource.NewScaledQuantity(c.Int63n(1<<40), resource.Scale(c.Intn(13)-6))
			q.Format = quantityFormats[c.Intn(len(quantityFormats))]
		},
		func(f *metav1.FieldsV1, c randfill.Continue) {
			f.Raw = []byte(`{"f:metadata":{"f:labels":{}}}`)
		},
	)
	for i := range 500 {
		var pod corev1.Pod
		filler.Fill(&pod)
		raw, err := json.Marshal(&pod)
		require.NoError(t, err)
		want, err := referencePod(raw)
		require.NoError(t, err)
		got, err := decodePod(raw)
		require.NoError(t, err, "pod %d: %s", i, raw)
		require.Equal(t, want, got, "pod %d: %s", i, raw)
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
		require.Equal(t, want, got, "%s", sent)
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
