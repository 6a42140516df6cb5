package loadaware

import (
	v1 "k8s.io/api/core/v1"
	"k8s.io/kubernetes/pkg/apis/scheduling"
	schedutil "k8s.io/kubernetes/pkg/scheduler/util"

	"github.com/harbormaster-dev/harbormaster/pkg/plugins/apis/config"
	"github.com/harbormaster-dev/harbormaster/pkg/utilization"
)

const (
	systemCriticalPriority    = scheduling.SystemCriticalPriority
	systemPriorityClassPrefix = scheduling.SystemPriorityClassPrefix
)

// usage is an estimated absolute consumption.
type usage struct {
	milliCPU int64
	memory   int64 // bytes
}

func (u usage) of(r utilization.Resource) int64 {
	switch r {
	case utilization.CPU:
		return u.milliCPU
	case utilization.Memory:
		return u.memory
	}
	return 0
}

// estimation guesses what a pod will use before any sample reflects it.
type estimation struct {
	mode           config.EstimationMode
	requestPercent int64
}

// podUsage sums the long-running containers (regular ones and restartable
// init containers, i.e. sidecars) plus pod overhead. Run-to-completion init
// containers are left out: they are gone by the time load settles.
func (e estimation) podUsage(pod *v1.Pod) usage {
	if e.mode == config.EstimateNone {
		return usage{}
	}
	var u usage
	add := func(c *v1.Container) {
		u.milliCPU += e.container(c, v1.ResourceCPU)
		u.memory += e.container(c, v1.ResourceMemory)
	}
	for i := range pod.Spec.Containers {
		add(&pod.Spec.Containers[i])
	}
	for i := range pod.Spec.InitContainers {
		if c := &pod.Spec.InitContainers[i]; c.RestartPolicy != nil && *c.RestartPolicy == v1.ContainerRestartPolicyAlways {
			add(c)
		}
	}
	if pod.Spec.Overhead != nil {
		u.milliCPU += pod.Spec.Overhead.Cpu().MilliValue()
		u.memory += pod.Spec.Overhead.Memory().Value()
	}
	return u
}

// container estimates one container. Without a request it assumes the
// scheduler's own non-zero defaults (100m, 200MiB), so best-effort pods are
// not free.
func (e estimation) container(c *v1.Container, name v1.ResourceName) int64 {
	if e.mode == config.EstimateLimit {
		if q, ok := c.Resources.Limits[name]; ok && !q.IsZero() {
			return quantityValue(name, q.MilliValue(), q.Value())
		}
	}
	var request int64
	if q, ok := c.Resources.Requests[name]; ok && !q.IsZero() {
		request = quantityValue(name, q.MilliValue(), q.Value())
	} else if name == v1.ResourceCPU {
		request = schedutil.DefaultMilliCPURequest
	} else {
		request = schedutil.DefaultMemoryRequest
	}
	return request * e.requestPercent / 100
}

func quantityValue(name v1.ResourceName, milli, whole int64) int64 {
	if name == v1.ResourceCPU {
		return milli
	}
	return whole
}
