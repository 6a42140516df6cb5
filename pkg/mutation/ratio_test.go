package mutation

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// exactQuotient is the reference: the rational arithmetic alone.
func exactQuotient(res corev1.ResourceName, q resource.Quantity, ratio float64) (resource.Quantity, bool) {
	return divideRoundingUp(res, q, ratioRat(ratio))
}

func TestDecimalRatioDivision(t *testing.T) {
	for _, tc := range []struct {
		res   corev1.ResourceName
		limit string
		ratio float64
		want  string
	}{
		{corev1.ResourceCPU, "1100m", 1.1, "1"}, // 11/10 exactly, not 1001m
		{corev1.ResourceCPU, "2", 3, "667m"},
		{corev1.ResourceCPU, "1", 100, "10m"},
		{corev1.ResourceCPU, "1m", 7.5, "1m"},
		{corev1.ResourceCPU, "1500u", 2, "1m"}, // below a millicore: the exact path
		{corev1.ResourceMemory, "1Gi", 1.5, "715827883"},
		{corev1.ResourceMemory, "3", 2, "2"},
		{corev1.ResourceMemory, "1.5", 1, "2"}, // fractional bytes: the exact path
		{corev1.ResourceMemory, "7Ei", 1.25, "6456360425798343066"},
		{corev1.ResourceMemory, "1e19", 1.01, ""}, // the quotient does not fit
		{corev1.ResourceCPU, "3.3333333", 1.3333333333333333, "2500m"},
	} {
		got, ok := newDecimalRatio(tc.ratio).divideRoundingUp(tc.res, resource.MustParse(tc.limit))
		want, wantOK := exactQuotient(tc.res, resource.MustParse(tc.limit), tc.ratio)
		require.Equal(t, wantOK, ok, "%s / %g", tc.limit, tc.ratio)
		if tc.want == "" {
			require.False(t, ok, "%s / %g", tc.limit, tc.ratio)
			continue
		}
		require.True(t, ok, "%s / %g", tc.limit, tc.ratio)
		require.Zero(t, got.Cmp(resource.MustParse(tc.want)), "%s / %g = %s, want %s", tc.limit, tc.ratio, got.String(), tc.want)
		require.Zero(t, got.Cmp(want), "%s / %g: integer %s, exact %s", tc.limit, tc.ratio, got.String(), want.String())
	}
}

// TestDecimalRatioMatchesExact compares the integer shortcut with the exact
// rational division on random limits and ratios of every magnitude.
func TestDecimalRatioMatchesExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(42, 7))
	for range 20000 {
		ratio := 1 + rng.Float64()*99
		switch rng.IntN(3) {
		case 0: // the decimals admins write
			ratio = float64(rng.IntN(9901)+100) / 100
		case 1:
			ratio = float64(rng.IntN(100) + 1)
		}
		var q resource.Quantity
		res := corev1.ResourceCPU
		switch rng.IntN(4) {
		case 0:
			q = *resource.NewMilliQuantity(rng.Int64N(1<<40)+1, resource.DecimalSI)
		case 1:
			q = *resource.NewScaledQuantity(rng.Int64N(1<<40)+1, resource.Scale(-rng.IntN(9)))
		case 2:
			res = corev1.ResourceMemory
			q = *resource.NewQuantity(rng.Int64N(1<<62)+1, resource.BinarySI)
		default:
			res = corev1.ResourceMemory
			q = *resource.NewScaledQuantity(rng.Int64N(1<<20)+1, resource.Scale(rng.IntN(18)-3))
		}
		got, ok := newDecimalRatio(ratio).divideRoundingUp(res, q)
		want, wantOK := exactQuotient(res, q, ratio)
		require.Equal(t, wantOK, ok, "%s %s / %v", res, q.String(), ratio)
		if ok {
			require.Zero(t, got.Cmp(want), "%s %s / %v: integer %s, exact %s", res, q.String(), ratio, got.String(), want.String())
		}
	}
}

// TestOvercommitRecordEncoding: the annotation is byte for byte what
// encoding/json writes for the OvercommitRecord, so annotations written
// before keep comparing equal and the mutation stays idempotent. Repeated
// container names (the API server rejects them only after admission) keep
// the last value, as the map does.
func TestOvercommitRecordEncoding(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	names := []string{"app", "sidecar", "a\"b", "é", "<x>", "migrate"}
	quantities := []string{"2", "500m", "1Gi", "1.5", "100Mi"}
	for range 3000 {
		ratios := RecordedRatios{CPU: 1 + float64(rng.IntN(9900))/100, Memory: 1 + rng.Float64()*99}
		record := OvercommitRecord{Ratios: ratios}
		var originals []recordedOriginal
		for range rng.IntN(6) {
			key := []string{"containers/", "initContainers/"}[rng.IntN(2)] + names[rng.IntN(len(names))]
			if rng.IntN(5) == 0 {
				key = "pod"
			}
			res := []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory}[rng.IntN(2)]
			value := quantities[rng.IntN(len(quantities))]
			originals = append(originals, recordedOriginal{key: key, res: res, value: value})
			if record.Originals == nil {
				record.Originals = map[string]map[corev1.ResourceName]string{}
			}
			if record.Originals[key] == nil {
				record.Originals[key] = map[corev1.ResourceName]string{}
			}
			record.Originals[key][res] = value
		}
		want, err := json.Marshal(record)
		require.NoError(t, err)
		got, ok := encodeRecord(ratios, originals)
		require.True(t, ok)
		require.Equal(t, string(want), got)
	}
	_, ok := encodeRecord(RecordedRatios{CPU: math.NaN(), Memory: 1}, nil)
	require.False(t, ok, "NaN has no JSON form")
}
