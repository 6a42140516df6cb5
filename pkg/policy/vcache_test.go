package policy

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/topdown"
	"github.com/stretchr/testify/require"
)

// virtualCache answers every Get as OPA's own cache does, over random
// sequences of Put, Get, Push and Pop on overlapping references; one cache
// serves every round, reset in between, as the engine reuses them.
func TestVirtualCacheMatchesOPA(t *testing.T) {
	refs := []ast.Ref{
		ast.MustParseRef("data.a"), ast.MustParseRef("data.a.b"), ast.MustParseRef("data.a.b.c"),
		ast.MustParseRef(`data.a["b"]`), ast.MustParseRef("data.a[1]"), ast.MustParseRef(`data.f[{"x": [1, "y"]}]`),
		ast.MustParseRef("data.g"), ast.MustParseRef("data.a.c"), ast.MustParseRef(`data.f[{"x": [1, "z"]}]`),
	}
	values := []*ast.Term{nil, ast.IntNumberTerm(1), ast.StringTerm("v"), ast.MustParseTerm(`{"k": [true]}`)}
	r := rand.New(rand.NewPCG(1, 2))
	got := newVirtualCache()
	for round := range 200 {
		want := topdown.NewVirtualCache()
		got.reset()
		depth := 0
		for step := range 200 {
			ref := refs[r.IntN(len(refs))]
			switch op := r.IntN(10); {
			case op < 4:
				// A reused backing array, as OPA's function cache keys are.
				key := append(make(ast.Ref, 0, 8), ref...)
				v := values[r.IntN(len(values))]
				want.Put(key, v)
				got.Put(key, v)
				key[0] = ast.VarTerm("clobbered")
			case op < 8:
				wv, wu := want.Get(ref)
				gv, gu := got.Get(ref)
				require.Equal(t, wu, gu, "round %d step %d: Get(%v) undefined", round, step, ref)
				require.True(t, wv.Equal(gv), "round %d step %d: Get(%v) = %v, want %v", round, step, ref, gv, wv)
			case op == 8:
				want.Push()
				got.Push()
				depth++
			case depth > 0:
				want.Pop()
				got.Pop()
				depth--
			}
		}
		require.ElementsMatch(t, refStrings(want.Keys()), refStrings(got.Keys()), "round %d", round)
	}
	// Past a block's worth of entries and references, and after reset
	// nothing of the last evaluation is reachable.
	got.reset()
	for i := range 3 * cacheEntryBlock {
		got.Put(ast.Ref{ast.DefaultRootDocument, ast.IntNumberTerm(i), ast.StringTerm(strings.Repeat("x", i%7))}, ast.IntNumberTerm(i))
	}
	for i := range 3 * cacheEntryBlock {
		v, undefined := got.Get(ast.Ref{ast.DefaultRootDocument, ast.IntNumberTerm(i), ast.StringTerm(strings.Repeat("x", i%7))})
		require.False(t, undefined)
		require.Equal(t, ast.IntNumberTerm(i), v)
	}
	got.reset()
	require.Empty(t, got.Keys())
	// What it keeps is bounded.
	for i := range (cacheBlocksKept + 2) * cacheEntryBlock {
		got.Put(ast.Ref{ast.DefaultRootDocument, ast.IntNumberTerm(i), ast.StringTerm(strings.Repeat("y", 3000))}, nil)
	}
	require.Greater(t, len(got.blocks), cacheBlocksKept)
	got.reset()
	require.Len(t, got.blocks, cacheBlocksKept)
	require.LessOrEqual(t, cap(got.refs), cacheBlocksKept*cacheRefsBlock)
	for _, b := range got.blocks {
		for _, e := range b {
			require.Zero(t, e)
		}
	}
	require.Empty(t, got.refs)
	for _, r := range got.refs[:cap(got.refs)] {
		require.Nil(t, r)
	}
}

func refStrings(refs []ast.Ref) []string {
	out := make([]string, len(refs))
	for i, r := range refs {
		out[i] = r.String()
	}
	return out
}
