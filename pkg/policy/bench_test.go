package policy

import (
	"context"
	"testing"
)

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
	ctx := context.Background()
	// Warm the config cache as the webhook's steady state does.
	if _, err := engine.Evaluate(ctx, in); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		d, err := engine.Evaluate(ctx, in)
		if err != nil {
			b.Fatal(err)
		}
		if !d.Allowed {
			b.Fatalf("realistic pod denied: %v", d.Violations)
		}
	}
}
