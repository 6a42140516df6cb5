// Command scheduler is kube-scheduler built with Harbormaster's plugins. It
// accepts every kube-scheduler flag; plugins are enabled per profile in the
// KubeSchedulerConfiguration passed with --config (see manifests/scheduler).
package main

import (
	"os"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // REST client metrics
	_ "k8s.io/component-base/metrics/prometheus/version"  // build version metric

	"github.com/harbormaster-dev/harbormaster/pkg/schedulerapp"
)

func main() {
	os.Exit(cli.Run(schedulerapp.NewCommand()))
}
