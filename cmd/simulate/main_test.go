package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseSeeds(t *testing.T) {
	got, err := parseSeeds("42-45")
	require.NoError(t, err)
	assert.Equal(t, []uint64{42, 43, 44, 45}, got)
	got, err = parseSeeds("7, 9")
	require.NoError(t, err)
	assert.Equal(t, []uint64{7, 9}, got)
	for _, bad := range []string{"51-42", "x", "1-y", ""} {
		_, err := parseSeeds(bad)
		assert.Error(t, err, bad)
	}
}

func TestArgsFor(t *testing.T) {
	args, err := argsFor("nvidia.com/gpu=2,cpu=1")
	require.NoError(t, err)
	require.Len(t, args.ScoringStrategy.Resources, 2)
	assert.Equal(t, int64(2), args.ScoringStrategy.Resources[0].Weight)
	_, err = argsFor("disk=1")
	assert.ErrorContains(t, err, "disk")
	_, err = argsFor("cpu")
	assert.ErrorContains(t, err, "name=integer")
}
