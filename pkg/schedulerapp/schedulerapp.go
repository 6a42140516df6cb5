// Package schedulerapp assembles Harbormaster's kube-scheduler: the upstream
// scheduler command with our plugins and a selection of
// sigs.k8s.io/scheduler-plugins registered as out-of-tree plugins. The command
// in cmd/scheduler and the in-process scheduler of the test harness both use
// it, so tests exercise exactly the registry that ships.
package schedulerapp

import (
	"github.com/spf13/cobra"
	"k8s.io/component-base/metrics/legacyregistry"
	"k8s.io/kubernetes/cmd/kube-scheduler/app"
	"sigs.k8s.io/scheduler-plugins/pkg/coscheduling"
	"sigs.k8s.io/scheduler-plugins/pkg/trimaran/loadvariationriskbalancing"
	"sigs.k8s.io/scheduler-plugins/pkg/trimaran/targetloadpacking"

	// Registers the scheduler-plugins config types (Trimaran and Coscheduling
	// args) with the scheduler's config scheme so KubeSchedulerConfiguration
	// files can carry their pluginConfig.
	_ "sigs.k8s.io/scheduler-plugins/apis/config/scheme"

	gpuplugin "github.com/harbormaster-dev/harbormaster/pkg/plugins/gpu"
	"github.com/harbormaster-dev/harbormaster/pkg/plugins/loadaware"
)

// SchedulerName is the name pods use (spec.schedulerName) to be placed by
// Harbormaster when it runs beside the default scheduler.
const SchedulerName = "harbormaster-scheduler"

// RegistryOptions lists every out-of-tree plugin the Harbormaster scheduler
// can enable from its KubeSchedulerConfiguration.
func RegistryOptions() []app.Option {
	return []app.Option{
		app.WithPlugin(targetloadpacking.Name, targetloadpacking.New),
		app.WithPlugin(loadvariationriskbalancing.Name, loadvariationriskbalancing.New),
		app.WithPlugin(coscheduling.Name, coscheduling.New),
		// The utilisation pipeline's metrics go to the registry the
		// scheduler serves on /metrics.
		app.WithPlugin(loadaware.Name, loadaware.Factory(loadaware.Options{MetricsRegisterer: legacyregistry.Registerer()})),
		app.WithPlugin(gpuplugin.Name, gpuplugin.Factory(gpuplugin.Options{MetricsRegisterer: legacyregistry.Registerer()})),
	}
}

// NewCommand returns the kube-scheduler command with Harbormaster's registry.
func NewCommand() *cobra.Command {
	cmd := app.NewSchedulerCommand(RegistryOptions()...)
	cmd.Use = "harbormaster-scheduler"
	return cmd
}
