package jsonenc

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/api/resource"
)

// TestAppendStringMatchesEncodingJSON compares the string encoder with
// encoding/json byte for byte on every ASCII character, the separators
// encoding/json escapes, and random strings.
func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	cases := []string{"", "plain", "\u2028\u2029", "é😀", "\xff\xfe", "a\xc3", `{"ratios":{"cpu":4}}`}
	for c := range 0x80 {
		cases = append(cases, "x"+string(rune(c))+"y")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		b := make([]byte, rng.IntN(12))
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		cases = append(cases, string(b), strings.ToValidUTF8(string(b), "\u2028"))
	}
	for _, s := range cases {
		want, err := json.Marshal(s)
		require.NoError(t, err)
		require.Equal(t, string(want), string(AppendString(nil, s)), "%q", s)
	}
}

func TestAppendFloatMatchesEncodingJSON(t *testing.T) {
	cases := []float64{0, 1, 1.5, 1.1, 10, 100, 3.3333333333333335, 1e-6, 9.99e-7, 1e-7, 1e20, 1e21, 1.5e300, -2.25, math.SmallestNonzeroFloat64, math.MaxFloat64}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 5000 {
		cases = append(cases, math.Float64frombits(rng.Uint64()), rng.Float64()*100, float64(rng.IntN(10000))/100)
	}
	for _, f := range cases {
		want, err := json.Marshal(f)
		got, ok := AppendFloat(nil, f)
		if err != nil {
			require.False(t, ok, "%v", f)
			continue
		}
		require.True(t, ok, "%v", f)
		require.Equal(t, string(want), string(got), "%v", f)
	}
}

func TestAppendQuantityMatchesMarshalJSON(t *testing.T) {
	for _, s := range []string{"0", "1", "500m", "1.5", "1Gi", "1.5Gi", "1e3", "100Mi", "1500u", "12345678901234567", "0.1n", "2k", "7Ei"} {
		q := resource.MustParse(s)
		want, err := json.Marshal(q)
		require.NoError(t, err)
		require.Equal(t, string(want), string(AppendQuantity(nil, &q)), s)
		roomy := append(make([]byte, 0, 128), "x:"...)
		require.Equal(t, "x:"+string(want), string(AppendQuantity(roomy, &q)), s)
	}
}

func TestSortedKeys(t *testing.T) {
	var buf [2]string
	require.Equal(t, []string{"a", "b", "c"}, SortedKeys(map[string]int{"c": 1, "a": 2, "b": 3}, buf[:0]))
	require.Empty(t, SortedKeys(map[string]int(nil), buf[:0]))
}
