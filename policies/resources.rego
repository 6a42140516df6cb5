# METADATA
# title: Resources
# description: >-
#   Limits that make overcommit work, and the tenant's GPU quota and models.
package harbormaster.resources

import data.harbormaster.lib

gpu_resource := "nvidia.com/gpu"

gpu_product_label := "nvidia.com/gpu.product"

gpu_milli_annotation := "harbormaster.io/gpu-milli"

# Containers that take resources; ephemeral containers may not set any.
limited_kinds := {"containers", "initContainers"}

# Rules that compare per container bind these constants to a variable
# first: a variable costs less to read than a rule.

# METADATA
# title: Containers set cpu and memory limits
# description: >-
#   Every container and init container sets resources.limits.cpu and
#   resources.limits.memory (or the pod sets pod-level spec.resources
#   limits): overcommit lowers requests relative to limits, so a container
#   without limits escapes it.
# custom:
#   id: HM-RS-001
#   severity: medium
#   enforcement: deny
#   control: Every container declares cpu and memory limits so overcommit applies.
deny contains violation if {
	lib.reviewable
	some resource in limits_to_check
	kinds := limited_kinds
	some entry in lib.containers
	entry.kind in kinds
	object.get(entry.container, ["resources", "limits", resource], null) == null
	object.get(lib.pod_spec, ["resources", "limits", resource], null) == null
	lib.container_changed(entry, ["resources"])
	field := sprintf("%s.resources.limits.%s", [entry.field, resource])
	violation := {
		"id": "HM-RS-001",
		"msg": sprintf("container %q sets no %s limit (%s)", [entry.name, resource, field]),
		"field": field,
	}
}

# HM-RS-001 reads limits inline, not through a helper function: it runs for
# every container and resource of every request.

# limits_to_check: cpu and memory, less those every container and init
# container sets a limit of, as the engine counted them (input.facts).
limits_to_check := {"cpu", "memory"} - limits_set

limits_set contains resource if {
	some resource, unset in lib.facts.unset_limits
	unset == 0
}

# METADATA
# title: GPUs per pod within the tenant's cap
# description: >-
#   The pod's effective nvidia.com/gpu (max of the sum over containers and
#   sidecars and the peak of any init container) plus shared GPUs (annotation
#   harbormaster.io/gpu-milli, rounded up to whole GPUs) must not exceed the
#   tenant's maxGPUsPerPod; with 0 the tenant may not use GPUs at all.
# custom:
#   id: HM-RS-002
#   severity: high
#   enforcement: deny
#   control: A tenant's pods use at most the tenant's GPUs per pod.
deny contains violation if {
	lib.tenant_review
	cap := object.get(lib.tenant, "maxGPUsPerPod", null)
	is_number(cap)
	gpus_used > cap
	gpu_usage_changed
	violation := {
		"id": "HM-RS-002",
		"msg": sprintf("pod uses %d GPU(s) (%s: %d whole, %s: %d shared) but tenant %q allows at most %d per pod", [gpus_used, gpu_field, whole_gpus, lib.annotation_field(gpu_milli_annotation), shared_gpus, lib.tenant_name, cap]),
		"field": gpu_violation_field,
	}
}

gpu_field := lib.spec_field(sprintf("containers[*].resources.limits[%s]", [gpu_resource]))

gpu_violation_field := lib.annotation_field(gpu_milli_annotation) if whole_gpus == 0

else := lib.spec_field("containers")

# METADATA
# title: GPU pods are restricted to the tenant's GPU models
# description: >-
#   When the tenant lists allowedGPUModels, a pod using GPUs (whole or
#   shared) must restrict the node label nvidia.com/gpu.product to allowed
#   values, through nodeSelector or an In requirement in every required
#   nodeSelectorTerm.
# custom:
#   id: HM-RS-003
#   severity: medium
#   enforcement: deny
#   control: A tenant's GPU pods only run on the GPU models allowed to the tenant.
deny contains violation if {
	lib.tenant_review
	count(allowed_models) > 0
	gpus_used > 0
	gpu_model_inputs_changed
	some finding in gpu_model_findings
	violation := {"id": "HM-RS-003", "msg": finding.msg, "field": finding.field}
}

allowed_models := {m | some m in models} if {
	models := lib.tenant.allowedGPUModels
	is_array(models)
} else := set()

allowed_models_list := concat(", ", sort(allowed_models))

gpu_model_findings contains {"msg": msg, "field": field} if {
	model := lib.node_selector[gpu_product_label]
	not model in allowed_models
	field := lib.node_selector_field(gpu_product_label)
	msg := sprintf("%s is %q, not a GPU model tenant %q may use (allowed: %s)", [field, model, lib.tenant_name, allowed_models_list])
}

gpu_model_findings contains {"msg": msg, "field": field} if {
	not model_restricted
	field := lib.node_selector_field(gpu_product_label)
	msg := sprintf("pod uses GPUs but does not restrict node label %s to the models tenant %q may use (%s): set %s or an In requirement in every term of %s", [gpu_product_label, lib.tenant_name, allowed_models_list, field, lib.required_affinity_field])
}

model_restricted if lib.node_selector[gpu_product_label] in allowed_models

model_restricted if {
	some term in lib.required_terms
	not lib.empty_term(term)
	every t in lib.required_terms {
		term_restricts_model(t)
	}
}

term_restricts_model(term) if lib.empty_term(term)

term_restricts_model(term) if {
	some r in lib.term_expressions(term)
	lib.requirement_head(r) == [gpu_product_label, "In"]
	values := lib.requirement_values(r)
	count(values) > 0
	count(values - allowed_models) == 0
}

# ---------------------------------------------------------------------------
# GPU accounting, following Kubernetes' effective pod request: sidecars
# (init containers with restartPolicy Always) run alongside the containers;
# a regular init container runs alone next to the sidecars started before it.

container_gpus(container) := max([
	lib.quantity(object.get(container, ["resources", "limits", gpu_resource], 0)),
	lib.quantity(object.get(container, ["resources", "requests", gpu_resource], 0)),
])

sidecar(entry) if {
	entry.kind == "initContainers"
	object.get(entry.container, "restartPolicy", "") == "Always"
}

regular_gpus := sum([container_gpus(e.container) | some e in lib.containers; e.kind == "containers"])

sidecar_gpus := sum([container_gpus(e.container) | some e in lib.containers; sidecar(e)])

init_peaks contains container_gpus(e.container) + sidecars_before(e.index) if {
	some e in lib.containers
	e.kind == "initContainers"
	not sidecar(e)
}

init_peak_gpus := max(init_peaks | {0})

sidecars_before(index) := sum([container_gpus(e.container) | some e in lib.containers; sidecar(e); e.index < index])

whole_gpus := max([regular_gpus + sidecar_gpus, init_peak_gpus])

# Shared GPUs: a positive gpu-milli annotation counts as at least one GPU;
# an unparsable value counts as one (fail closed).
shared_gpus := 0 if {
	not lib.pod_annotations[gpu_milli_annotation]
} else := n if {
	raw := lib.pod_annotations[gpu_milli_annotation]
	regex.match(`^[0-9]+(\.[0-9]+)?$`, raw)
	n := ceil(to_number(raw) / 1000)
} else := 1

# gpus_used = whole_gpus + shared_gpus, with a shortcut for the pods that
# mention no GPU (most): see the end of the file.

# UPDATE: GPU fields cannot be resized, so only a change of what counts is
# judged; a cap lowered later does not block updates of running pods.
gpu_usage_changed if lib.is_create

gpu_usage_changed if {
	lib.is_update
	old_gpus_used != gpus_used
}

old_gpus_used := n if {
	n := gpus_used with input.request.object as lib.old_object
}

gpu_model_inputs_changed if gpu_usage_changed

gpu_model_inputs_changed if lib.spec_changed(["nodeSelector"])

gpu_model_inputs_changed if lib.spec_changed(lib.required_affinity_path)

# METADATA
# title: Limits below the overcommit floor
# description: >-
#   A cpu or memory limit below the overcommit floor (config
#   overcommit.minCPURequest, default 10m; minMemoryRequest, default 16Mi)
#   gets a request equal to its limit, so overcommit does nothing for it,
#   and such tiny limits usually mean a typo ("100" for "100Mi").
# custom:
#   id: HM-RS-004
#   severity: low
#   enforcement: warn
#   control: Container limits are large enough for overcommit to apply.
warn contains violation if {
	lib.reviewable
	some resource in floors_to_check
	minimum := floors[resource]
	kinds := limited_kinds
	some entry in lib.containers
	entry.kind in kinds
	raw := object.get(entry.container, ["resources", "limits", resource], null)
	raw != null
	lib.quantity(raw) < floor_quantities[resource]
	lib.container_changed(entry, ["resources"])
	field := sprintf("%s.resources.limits.%s", [entry.field, resource])
	violation := {
		"id": "HM-RS-004",
		"msg": sprintf("container %q: %s %v is below the overcommit floor %v, so its request stays at its limit; is the unit right?", [entry.name, field, raw, minimum]),
		"field": field,
	}
}

floors := {
	"cpu": object.get(lib.config, ["overcommit", "minCPURequest"], "10m"),
	"memory": object.get(lib.config, ["overcommit", "minMemoryRequest"], "16Mi"),
}

# Parsed once per request, not once per container.
floor_quantities[resource] := lib.quantity(minimum) if some resource, minimum in floors

# floors_to_check: the resources with a floor, less those whose smallest
# limit, as the engine found it (input.facts), is not below the floor, so
# that no limit is. (Sets rather than a negated comparison in the rule: OPA
# evaluates a negated call's references outside the negation, so an
# undefined fact would fail the rule instead of passing the check.)
floors_to_check := object.keys(floors) - floors_kept

floors_kept contains resource if {
	some resource, least in lib.facts.least_limits
	least >= floor_quantities[resource]
}

# Pods that mention no GPU (most) count 0 without the GPU accounting.
gpus_used := whole_gpus + shared_gpus if mentions_gpus

else := 0

# mentions_gpus: a GPU count or the shared-GPU annotation is present. Without
# one, the accounting gives 0 (a missing or null count counts 0).
mentions_gpus if lib.pod_annotations[gpu_milli_annotation]

# Refs are cheaper than object.get(..., null) != null and fail in the same
# cases: a missing or non-object step, a null count.
mentions_gpus if {
	gpu := gpu_resource
	some e in lib.containers
	e.container.resources.limits[gpu] != null
}

mentions_gpus if {
	gpu := gpu_resource
	some e in lib.containers
	e.container.resources.requests[gpu] != null
}
