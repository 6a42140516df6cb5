package harbormaster.gpu

import data.harbormaster.lib

# METADATA
# title: Too many GPUs
# description: A pod may not request more nvidia.com/gpu than its tenant's maxGPUsPerPod.
# custom:
#   id: HM-GPU-001
#   severity: high
#   enforcement: deny
#   control: CAP-1
deny contains violation if {
	lib.governed
	max := input.tenant.maxGPUsPerPod
	max != null
	lib.pod_gpus > max
	violation := {
		"id": "HM-GPU-001",
		"msg": sprintf("pod requests %d GPUs, tenant %s allows %d", [lib.pod_gpus, input.tenant.name, max]),
		"field": "spec.containers[*].resources.limits[\"nvidia.com/gpu\"]",
	}
}

# METADATA
# title: GPU pod without a model selector
# description: GPU pods should select a GPU model so they land on a node of an allowed model.
# custom:
#   id: HM-GPU-002
#   severity: low
#   enforcement: warn
#   control: CAP-2
warn contains violation if {
	lib.governed
	lib.pod_gpus > 0
	count(input.tenant.allowedGPUModels) > 0
	not lib.pod.spec.nodeSelector["nvidia.com/gpu.product"]
	violation := {
		"id": "HM-GPU-002",
		"msg": "GPU pod selects no nvidia.com/gpu.product; it may land on a model the tenant may not use",
		"field": "spec.nodeSelector",
	}
}
