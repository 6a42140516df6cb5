package gpu

import (
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/defaultbinder"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/queuesort"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"
	tf "k8s.io/kubernetes/pkg/scheduler/testing/framework"

	"github.com/harbormaster-dev/harbormaster/pkg/plugins/loadaware"
)

// TestPipelineMetricsBesideLoadAware builds this plugin and
// HarbormasterLoadAware in one profile on one registry, in both orders (the
// framework creates a profile's plugins in map order): each exports its own
// pipeline's series, told apart by the plugin label. When they shared the
// series, whichever came second exported nothing.
func TestPipelineMetricsBesideLoadAware(t *testing.T) {
	loadArgs := `{"scoringStrategy":{"resources":[{"name":"cpu","weight":1}]},"stalenessWindow":"30s",
	  "sources":{"prometheus":{"address":"http://127.0.0.1:1","queries":{"cpu":"node_cpu"},"nodeLabels":["node"],"refreshInterval":"10s","timeout":"1s"}}}`
	gpuArgs := `{"utilization":{"weight":100,"stalenessWindow":"30s","prometheus":{"address":"http://127.0.0.1:1","refreshInterval":"10s","timeout":"1s"}}}`
	for _, gpuFirst := range []bool{true, false} {
		t.Run(fmt.Sprintf("gpu-first=%v", gpuFirst), func(t *testing.T) {
			ctx := t.Context()
			client := fake.NewClientset()
			informerFactory := informers.NewSharedInformerFactory(client, 0)
			fw, err := tf.NewFramework(ctx, []tf.RegisterPluginFunc{
				tf.RegisterQueueSortPlugin(queuesort.Name, queuesort.New),
				tf.RegisterBindPlugin(defaultbinder.Name, defaultbinder.New),
			}, profileName, frameworkruntime.WithClientSet(client), frameworkruntime.WithInformerFactory(informerFactory))
			require.NoError(t, err)
			reg := prometheus.NewPedanticRegistry()
			build := []func() (framework.Plugin, error){
				func() (framework.Plugin, error) {
					return Factory(Options{MetricsRegisterer: reg})(ctx, unknownArgs(gpuArgs), fw)
				},
				func() (framework.Plugin, error) {
					return loadaware.Factory(loadaware.Options{MetricsRegisterer: reg})(ctx, unknownArgs(loadArgs), fw)
				},
			}
			if !gpuFirst {
				build[0], build[1] = build[1], build[0]
			}
			for _, b := range build {
				pl, err := b()
				require.NoError(t, err)
				t.Cleanup(func() { require.NoError(t, pl.(interface{ Close() error }).Close()) })
			}

			mfs, err := reg.Gather()
			require.NoError(t, err)
			sources := map[string]string{} // plugin -> source of its fetch error counter
			for _, mf := range mfs {
				if mf.GetName() != "harbormaster_utilization_fetch_errors_total" {
					continue
				}
				for _, m := range mf.GetMetric() {
					labels := map[string]string{}
					for _, l := range m.GetLabel() {
						labels[l.GetName()] = l.GetValue()
					}
					require.Equal(t, profileName, labels["profile"])
					sources[labels["plugin"]] = labels["source"]
				}
			}
			require.Equal(t, map[string]string{Name: "dcgm", loadaware.Name: "prometheus"}, sources)
		})
	}
}

func unknownArgs(raw string) runtime.Object {
	return &runtime.Unknown{Raw: []byte(raw), ContentType: runtime.ContentTypeJSON}
}
