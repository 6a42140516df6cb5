package harbormaster.resources_test

import data.harbormaster.fixtures
import data.harbormaster.resources

a100 := {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}

terms_path := "/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms"

# gpu_pod: the web pod with n GPUs on its container, pinned to the A100 model.
gpu_pod(n) := fixtures.patched_pod([
	{"op": "add", "path": "/spec/containers/0/resources/limits/nvidia.com~1gpu", "value": sprintf("%d", [n])},
	{"op": "add", "path": "/spec/nodeSelector", "value": a100},
])

shared_gpu_pod(milli) := fixtures.patched_pod([
	{"op": "add", "path": "/metadata/annotations", "value": {"harbormaster.io/gpu-milli": milli}},
	{"op": "add", "path": "/spec/nodeSelector", "value": a100},
])

deny_for(pod) := violations if {
	violations := resources.deny with input as fixtures.pod_input(pod)
}

with_cap(pod, cap) := object.union(fixtures.pod_input(pod), {"tenant": {"maxGPUsPerPod": cap}})

test_compliant_pod_passes if {
	count(deny_for(fixtures.web_pod)) == 0
	count(resources.warn) == 0 with input as fixtures.pod_input(fixtures.web_pod)
}

# --- HM-RS-001 limits ------------------------------------------------------------------

test_missing_cpu_limit_denied if {
	pod := fixtures.patched_pod([{"op": "remove", "path": "/spec/containers/0/resources/limits/cpu"}])
	violations := deny_for(pod)
	fixtures.ids(violations) == {"HM-RS-001"}
	fixtures.fields(violations) == {"spec.containers[0].resources.limits.cpu"}
	some v in violations
	contains(v.msg, "\"web\"")
}

test_missing_init_container_memory_limit_denied if {
	pod := fixtures.patched_pod([{"op": "remove", "path": "/spec/initContainers/0/resources/limits/memory"}])
	fixtures.fields(deny_for(pod)) == {"spec.initContainers[0].resources.limits.memory"}
}

test_requests_only_denied if {
	pod := fixtures.patched_pod([{"op": "replace", "path": "/spec/containers/0/resources", "value": {"requests": {"cpu": "1", "memory": "1Gi"}}}])
	fixtures.fields(deny_for(pod)) == {"spec.containers[0].resources.limits.cpu", "spec.containers[0].resources.limits.memory"}
}

test_ephemeral_container_needs_no_limits if {
	# The API forbids resources on ephemeral containers.
	pod := fixtures.patched_pod([{"op": "add", "path": "/spec/ephemeralContainers", "value": [{"name": "debug", "image": "docker.io/library/busybox:1.36"}]}])
	count(deny_for(pod)) == 0
}

test_pod_level_limits_cover_containers if {
	pod := fixtures.patched_pod([
		{"op": "remove", "path": "/spec/containers/0/resources"},
		{"op": "add", "path": "/spec/resources", "value": {"limits": {"cpu": "1", "memory": "512Mi"}}},
	])
	count(deny_for(pod)) == 0
}

test_missing_limits_in_deployment_template_denied if {
	template := json.patch(fixtures.web_template, [{"op": "remove", "path": "/spec/containers/0/resources"}])
	violations := resources.deny with input as fixtures.deployment_input(template)
	fixtures.fields(violations) == {"spec.template.spec.containers[0].resources.limits.cpu", "spec.template.spec.containers[0].resources.limits.memory"}
}

test_unchanged_container_not_redenied_on_update if {
	old := fixtures.patched_pod([{"op": "remove", "path": "/spec/initContainers/0/resources"}])
	resized := json.patch(old, [{"op": "replace", "path": "/spec/containers/0/resources/limits/cpu", "value": "1"}])
	inp := object.union(fixtures.pod_update(old, resized), {"request": {"subResource": "resize"}})
	count(resources.deny) == 0 with input as inp
}

# --- HM-RS-002 GPU cap -----------------------------------------------------------------------

test_gpus_within_cap_pass if {
	count(deny_for(gpu_pod(2))) == 0
}

test_gpus_above_cap_denied if {
	violations := deny_for(gpu_pod(3))
	fixtures.ids(violations) == {"HM-RS-002"}
	fixtures.fields(violations) == {"spec.containers"}
}

test_gpus_summed_over_containers if {
	pod := json.patch(gpu_pod(2), [{"op": "add", "path": "/spec/containers/-", "value": {
		"name": "sidekick", "image": "registry.example.com/team-a/sidekick:1",
		"resources": {"limits": {"cpu": "100m", "memory": "64Mi", "nvidia.com/gpu": "1"}},
	}}])
	fixtures.ids(deny_for(pod)) == {"HM-RS-002"}
}

test_init_container_gpus_do_not_add_up if {
	# Init containers run before the containers: effective = max, not sum.
	pod := json.patch(gpu_pod(2), [{"op": "add", "path": "/spec/initContainers/0/resources/limits/nvidia.com~1gpu", "value": "2"}])
	count(deny_for(pod)) == 0
}

test_init_container_above_cap_denied if {
	pod := json.patch(gpu_pod(1), [{"op": "add", "path": "/spec/initContainers/0/resources/limits/nvidia.com~1gpu", "value": "4"}])
	fixtures.ids(deny_for(pod)) == {"HM-RS-002"}
}

test_sidecar_gpus_add_up if {
	pod := json.patch(gpu_pod(2), [
		{"op": "add", "path": "/spec/initContainers/0/restartPolicy", "value": "Always"},
		{"op": "add", "path": "/spec/initContainers/0/resources/limits/nvidia.com~1gpu", "value": "1"},
	])
	fixtures.ids(deny_for(pod)) == {"HM-RS-002"}
}

test_gpus_in_deployment_template_above_cap_denied if {
	template := json.patch(fixtures.web_template, [
		{"op": "add", "path": "/spec/containers/0/resources/limits/nvidia.com~1gpu", "value": "4"},
		{"op": "add", "path": "/spec/nodeSelector", "value": a100},
	])
	fixtures.ids(resources.deny) == {"HM-RS-002"} with input as fixtures.deployment_input(template)
}

test_no_cap_allows_any_count if {
	count(resources.deny) == 0 with input as with_cap(gpu_pod(8), null)
}

test_zero_cap_denies_whole_gpu if {
	fixtures.ids(resources.deny) == {"HM-RS-002"} with input as with_cap(gpu_pod(1), 0)
}

test_zero_cap_denies_shared_gpu if {
	violations := resources.deny with input as with_cap(shared_gpu_pod("250"), 0)
	fixtures.ids(violations) == {"HM-RS-002"}
	fixtures.fields(violations) == {"metadata.annotations[harbormaster.io/gpu-milli]"}
}

test_zero_cap_denies_unparsable_shared_gpu if {
	fixtures.ids(resources.deny) == {"HM-RS-002"} with input as with_cap(shared_gpu_pod("half"), 0)
}

test_zero_shared_gpu_is_no_gpu if {
	count(resources.deny) == 0 with input as with_cap(shared_gpu_pod("0"), 0)
}

test_shared_gpu_within_cap_passes if {
	count(deny_for(shared_gpu_pod("500"))) == 0
}

test_lowered_cap_does_not_block_updates if {
	pod := gpu_pod(2)
	relabelled := json.patch(pod, [{"op": "add", "path": "/metadata/labels/release", "value": "canary"}])
	inp := object.union(fixtures.pod_update(pod, relabelled), {"tenant": {"maxGPUsPerPod": 1}})
	count(resources.deny) == 0 with input as inp
}

# --- HM-RS-003 GPU models ---------------------------------------------------------------

test_unrestricted_gpu_model_denied if {
	pod := json.patch(gpu_pod(1), [{"op": "remove", "path": "/spec/nodeSelector"}])
	violations := deny_for(pod)
	fixtures.ids(violations) == {"HM-RS-003"}
	fixtures.fields(violations) == {"spec.nodeSelector[nvidia.com/gpu.product]"}
}

test_unrestricted_shared_gpu_model_denied if {
	pod := json.patch(shared_gpu_pod("500"), [{"op": "remove", "path": "/spec/nodeSelector"}])
	fixtures.ids(deny_for(pod)) == {"HM-RS-003"}
}

test_disallowed_gpu_model_denied if {
	pod := json.patch(gpu_pod(1), [{"op": "replace", "path": "/spec/nodeSelector", "value": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}}])
	fixtures.ids(deny_for(pod)) == {"HM-RS-003"}
}

test_gpu_model_by_affinity_passes if {
	pod := json.patch(gpu_pod(1), [
		{"op": "remove", "path": "/spec/nodeSelector"},
		{"op": "add", "path": concat("", [terms_path, "/0/matchExpressions/-"]), "value": {"key": "nvidia.com/gpu.product", "operator": "In", "values": ["NVIDIA-A100-SXM4-80GB"]}},
	])
	count(deny_for(pod)) == 0
}

test_gpu_model_in_one_term_only_denied if {
	pod := json.patch(gpu_pod(1), [
		{"op": "remove", "path": "/spec/nodeSelector"},
		{"op": "replace", "path": terms_path, "value": [
			{"matchExpressions": [{"key": "nvidia.com/gpu.product", "operator": "In", "values": ["NVIDIA-A100-SXM4-80GB"]}]},
			{"matchExpressions": [{"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}]},
		]},
	])
	fixtures.ids(deny_for(pod)) == {"HM-RS-003"}
}

test_gpu_model_widened_values_denied if {
	pod := json.patch(gpu_pod(1), [
		{"op": "remove", "path": "/spec/nodeSelector"},
		{"op": "add", "path": concat("", [terms_path, "/0/matchExpressions/-"]), "value": {"key": "nvidia.com/gpu.product", "operator": "In", "values": ["NVIDIA-A100-SXM4-80GB", "NVIDIA-H100-80GB-HBM3"]}},
	])
	fixtures.ids(deny_for(pod)) == {"HM-RS-003"}
}

test_gpu_model_not_in_trick_denied if {
	pod := json.patch(gpu_pod(1), [
		{"op": "remove", "path": "/spec/nodeSelector"},
		{"op": "add", "path": concat("", [terms_path, "/0/matchExpressions/-"]), "value": {"key": "nvidia.com/gpu.product", "operator": "NotIn", "values": ["NVIDIA-H100-80GB-HBM3"]}},
	])
	fixtures.ids(deny_for(pod)) == {"HM-RS-003"}
}

test_any_model_when_list_empty if {
	pod := json.patch(gpu_pod(1), [{"op": "remove", "path": "/spec/nodeSelector"}])
	inp := object.union(fixtures.pod_input(pod), {"tenant": {"allowedGPUModels": []}})
	count(resources.deny) == 0 with input as inp
}

test_non_gpu_pod_needs_no_model if {
	count(deny_for(fixtures.web_pod)) == 0
}

# --- HM-RS-004 tiny limits (warn) -----------------------------------------------------

test_tiny_limits_warned if {
	pod := fixtures.patched_pod([
		{"op": "replace", "path": "/spec/containers/0/resources/limits/cpu", "value": "5m"},
		{"op": "replace", "path": "/spec/containers/0/resources/limits/memory", "value": "100"},
	])
	inp := fixtures.pod_input(pod)
	count(resources.deny) == 0 with input as inp
	violations := resources.warn with input as inp
	fixtures.ids(violations) == {"HM-RS-004"}
	fixtures.fields(violations) == {"spec.containers[0].resources.limits.cpu", "spec.containers[0].resources.limits.memory"}
}

test_limits_at_floor_not_warned if {
	pod := fixtures.patched_pod([
		{"op": "replace", "path": "/spec/containers/0/resources/limits/cpu", "value": "10m"},
		{"op": "replace", "path": "/spec/containers/0/resources/limits/memory", "value": "16Mi"},
	])
	count(resources.warn) == 0 with input as fixtures.pod_input(pod)
}

test_configured_floor_used if {
	pod := fixtures.patched_pod([{"op": "replace", "path": "/spec/containers/0/resources/limits/cpu", "value": "50m"}])
	inp := object.union(fixtures.pod_input(pod), {"config": {"overcommit": {"minCPURequest": "100m"}}})
	fixtures.ids(resources.warn) == {"HM-RS-004"} with input as inp
}
