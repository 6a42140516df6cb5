package configstore

import (
	"testing"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

const good = `apiVersion: config.harbormaster.io/v1alpha1
kind: HarbormasterConfig
overcommit:
  default: {cpu: 4}
`

func TestStoreKeepsLastGoodConfiguration(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := New(logr.Discard(), NewMetrics(reg))
	require.False(t, s.Loaded(), "defaults are not a loaded configuration")

	require.NoError(t, s.Update([]byte(good)))
	require.True(t, s.Loaded())
	first := s.Current()
	cpu, _ := first.Config.Ratios("any", "")
	require.Equal(t, 4.0, cpu)

	err := s.Update([]byte("apiVersion: config.harbormaster.io/v1alpha1\nkind: HarbormasterConfig\novercommit:\n  default: {cpu: 0.5}\n"))
	require.ErrorContains(t, err, "overcommit.default.cpu")
	require.Same(t, first, s.Current(), "a rejected document changes nothing")
	require.Equal(t, err, s.LastError())
	require.Equal(t, 1.0, testutil.ToFloat64(s.Metrics().Reloads.WithLabelValues("rejected")))
	require.Equal(t, 1.0, testutil.ToFloat64(s.Metrics().Reloads.WithLabelValues("accepted")))
	require.Equal(t, 1.0, testutil.ToFloat64(s.Metrics().Revision.WithLabelValues(first.Revision)))

	require.NoError(t, s.Update([]byte(good+"  namespaces: {web: {cpu: 10}}\n")))
	require.NotEqual(t, first.Revision, s.Current().Revision)
	require.NoError(t, s.LastError())
	require.Equal(t, 1, testutil.CollectAndCount(s.Metrics().Revision), "only the serving revision is reported")
}
