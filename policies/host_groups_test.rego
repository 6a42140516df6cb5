package harbormaster.host_groups_test

import data.harbormaster.fixtures
import data.harbormaster.host_groups

terms_path := "/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms"

with_terms(terms) := fixtures.patched_pod([{"op": "replace", "path": terms_path, "value": terms}])

general := {"key": "harbormaster.io/host-group", "operator": "In", "values": ["general"]}

fence := {"key": "harbormaster.io/dedicated", "operator": "NotIn", "values": ["gpu-b", "spark-a"]}

team_b := {"name": "team-b", "known": true, "hostGroups": ["gpu", "secure"], "defaultHostGroup": "gpu", "maxGPUsPerPod": null, "allowedGPUModels": [], "allowedRegistries": []}

deny_for(pod) := violations if {
	violations := host_groups.deny with input as fixtures.pod_input(pod)
}

# --- compliant -------------------------------------------------------------------

test_mutated_pod_passes if {
	count(deny_for(fixtures.web_pod)) == 0
}

test_dedicated_owner_pod_passes if {
	count(deny_for(fixtures.spark_pod)) == 0
}

test_batch_group_pod_passes if {
	pod := json.patch(with_terms([{"matchExpressions": [{"key": "harbormaster.io/host-group", "operator": "In", "values": ["batch"]}, fence]}]), [{"op": "add", "path": "/metadata/labels/harbormaster.io~1host-group", "value": "batch"}])
	count(deny_for(pod)) == 0
}

test_daemonset_pod_term_passes if {
	# The DaemonSet controller's metadata.name term, confined by the mutation.
	pod := with_terms([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["node-7"]}], "matchExpressions": [general, fence]}])
	count(deny_for(pod)) == 0
}

test_empty_term_is_not_an_escape if {
	pod := with_terms([{"matchExpressions": [general, fence]}, {}])
	count(deny_for(pod)) == 0
}

test_requirement_value_order_ignored if {
	group := {"key": "harbormaster.io/host-group", "operator": "In", "values": ["gpu"]}
	zone := {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["eu-1a"]}
	present := {"key": "nvidia.com/gpu.present", "operator": "In", "values": ["true"]}
	pod := with_terms([{"matchExpressions": [present, zone, group, {"key": "node.example.com/rack", "operator": "NotIn", "values": ["r2", "r1"]}]}])
	inp := object.union(fixtures.pod_input(pod), {"tenant": team_b})
	count(host_groups.deny) == 0 with input as inp
}

test_allowed_node_selector_passes if {
	pod := fixtures.patched_pod([{"op": "add", "path": "/spec/nodeSelector", "value": {"harbormaster.io/host-group": "general", "kubernetes.io/arch": "amd64"}}])
	count(deny_for(pod)) == 0
}

test_workload_template_without_affinity_passes if {
	count(host_groups.deny) == 0 with input as fixtures.deployment_input(fixtures.web_template)
}

# --- HM-HG-001 nodeName -----------------------------------------------------------

test_node_name_denied if {
	pod := fixtures.patched_pod([{"op": "add", "path": "/spec/nodeName", "value": "gpu-node-3"}])
	violations := deny_for(pod)
	fixtures.ids(violations) == {"HM-HG-001"}
	fixtures.fields(violations) == {"spec.nodeName"}
}

test_node_name_in_cronjob_template_denied if {
	template := json.patch(fixtures.web_template, [{"op": "add", "path": "/spec/nodeName", "value": "gpu-node-3"}])
	violations := host_groups.deny with input as fixtures.cronjob_input(template)
	fixtures.fields(violations) == {"spec.jobTemplate.spec.template.spec.nodeName"}
}

test_node_name_kept_on_update_not_redenied if {
	bound := fixtures.patched_pod([{"op": "add", "path": "/spec/nodeName", "value": "node-1"}])
	relabelled := json.patch(bound, [{"op": "add", "path": "/metadata/labels/release", "value": "canary"}])
	count(host_groups.deny) == 0 with input as fixtures.pod_update(bound, relabelled)
}

test_node_name_changed_on_update_denied if {
	bound := fixtures.patched_pod([{"op": "add", "path": "/spec/nodeName", "value": "node-1"}])
	moved := json.patch(bound, [{"op": "replace", "path": "/spec/nodeName", "value": "gpu-node-3"}])
	fixtures.ids(host_groups.deny) == {"HM-HG-001"} with input as fixtures.pod_update(bound, moved)
}

test_node_name_in_exempt_namespace_allowed if {
	pod := fixtures.patched_pod([{"op": "add", "path": "/spec/nodeName", "value": "gpu-node-3"}])
	inp := object.union(fixtures.pod_input(pod), {"exempt_namespace": true, "tenant": null})
	count(host_groups.deny) == 0 with input as inp
}

test_delete_never_denied if {
	pod := fixtures.patched_pod([{"op": "add", "path": "/spec/nodeName", "value": "gpu-node-3"}])
	inp := object.union(fixtures.pod_input(pod), {"request": {"operation": "DELETE", "oldObject": pod}})
	count(host_groups.deny) == 0 with input as inp
}

# --- HM-HG-002 host-group names -------------------------------------------------------

test_foreign_host_group_label_denied if {
	pod := fixtures.patched_pod([{"op": "add", "path": "/metadata/labels/harbormaster.io~1host-group", "value": "gpu"}])
	violations := deny_for(pod)
	fixtures.ids(violations) == {"HM-HG-002"}
	fixtures.fields(violations) == {"metadata.labels[harbormaster.io/host-group]"}
}

test_mixed_case_host_group_label_denied if {
	pod := fixtures.patched_pod([{"op": "add", "path": "/metadata/labels/harbormaster.io~1host-group", "value": "General"}])
	fixtures.ids(deny_for(pod)) == {"HM-HG-002"}
}

test_foreign_host_group_node_selector_denied if {
	pod := fixtures.patched_pod([{"op": "add", "path": "/spec/nodeSelector", "value": {"harbormaster.io/host-group": "gpu"}}])
	violations := deny_for(pod)
	fixtures.ids(violations) == {"HM-HG-002", "HM-HG-003"}
	fixtures.fields(violations) == {"spec.nodeSelector[harbormaster.io/host-group]"}
}

test_foreign_host_group_in_deployment_template_denied if {
	template := json.patch(fixtures.web_template, [{"op": "add", "path": "/metadata/labels/harbormaster.io~1host-group", "value": "secure"}])
	violations := host_groups.deny with input as fixtures.deployment_input(template)
	fixtures.fields(violations) == {"spec.template.metadata.labels[harbormaster.io/host-group]"}
}

test_unconfined_tenant_may_pick_any_group if {
	pod := json.patch(fixtures.web_pod, [
		{"op": "add", "path": "/spec/nodeSelector", "value": {"harbormaster.io/host-group": "gpu"}},
		{"op": "remove", "path": "/spec/affinity"},
	])
	inp := object.union(fixtures.pod_input(pod), {"tenant": {"hostGroups": []}})
	count(host_groups.deny) == 0 with input as inp
}

# --- HM-HG-003 foreign selector labels -----------------------------------------------

test_foreign_group_label_in_node_selector_denied if {
	pod := fixtures.patched_pod([{"op": "add", "path": "/spec/nodeSelector", "value": {"node.example.com/pool": "secure"}}])
	violations := deny_for(pod)
	fixtures.ids(violations) == {"HM-HG-003"}
	fixtures.fields(violations) == {"spec.nodeSelector[node.example.com/pool]"}
}

test_foreign_group_expression_value_denied if {
	pod := fixtures.patched_pod([{"op": "add", "path": "/spec/nodeSelector", "value": {"nvidia.com/gpu.present": "true"}}])
	fixtures.ids(deny_for(pod)) == {"HM-HG-003"}
}

test_unrelated_node_selector_allowed if {
	pod := fixtures.patched_pod([{"op": "add", "path": "/spec/nodeSelector", "value": {"node.example.com/pool": "standard", "kubernetes.io/os": "linux"}}])
	count(deny_for(pod)) == 0
}

# --- HM-HG-004 required node affinity ------------------------------------------------

test_missing_affinity_denied if {
	pod := fixtures.patched_pod([{"op": "remove", "path": "/spec/affinity"}])
	violations := deny_for(pod)
	fixtures.ids(violations) == {"HM-HG-004"}
	fixtures.fields(violations) == {"spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"}
}

test_second_term_escape_denied if {
	pod := with_terms([
		{"matchExpressions": [general, fence]},
		{"matchExpressions": [{"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}]},
	])
	violations := deny_for(pod)
	fixtures.ids(violations) == {"HM-HG-004"}
	fixtures.fields(violations) == {"spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[1]"}
}

test_not_in_own_group_trick_denied if {
	pod := with_terms([{"matchExpressions": [{"key": "harbormaster.io/host-group", "operator": "NotIn", "values": ["batch"]}, fence]}])
	fixtures.ids(deny_for(pod)) == {"HM-HG-004"}
}

test_exists_on_host_group_key_denied if {
	pod := with_terms([{"matchExpressions": [{"key": "harbormaster.io/host-group", "operator": "Exists"}, fence]}])
	fixtures.ids(deny_for(pod)) == {"HM-HG-004"}
}

test_widened_values_denied if {
	pod := with_terms([{"matchExpressions": [{"key": "harbormaster.io/host-group", "operator": "In", "values": ["general", "gpu"]}, fence]}])
	fixtures.ids(deny_for(pod)) == {"HM-HG-004"}
}

test_mixed_case_key_denied if {
	pod := with_terms([{"matchExpressions": [{"key": "Harbormaster.io/host-group", "operator": "In", "values": ["general"]}, fence]}])
	fixtures.ids(deny_for(pod)) == {"HM-HG-004"}
}

test_partial_group_requirements_denied if {
	# gpu needs three requirements; two are not enough.
	pod := with_terms([{"matchExpressions": [
		{"key": "harbormaster.io/host-group", "operator": "In", "values": ["gpu"]},
		{"key": "nvidia.com/gpu.present", "operator": "In", "values": ["true"]},
	]}])
	inp := object.union(fixtures.pod_input(pod), {"tenant": team_b})
	fixtures.ids(host_groups.deny) == {"HM-HG-004"} with input as inp
}

test_foreign_dedicated_term_denied if {
	pod := with_terms([{"matchExpressions": [{"key": "harbormaster.io/dedicated", "operator": "In", "values": ["gpu-b"]}]}])
	fixtures.ids(deny_for(pod)) == {"HM-HG-004"}
}

test_dedicated_term_of_other_app_denied if {
	# spark-a belongs to team-a's spark app only; the web pod does not own it.
	pod := with_terms([{"matchExpressions": [{"key": "harbormaster.io/dedicated", "operator": "In", "values": ["spark-a"]}]}])
	fixtures.ids(deny_for(pod)) == {"HM-HG-004"}
}

test_preferred_owned_pool_term_passes if {
	pod := with_terms([{"matchExpressions": [{"key": "harbormaster.io/dedicated", "operator": "In", "values": ["team-a-db"]}]}])
	count(deny_for(pod)) == 0
}

test_unauthorized_exempt_pod_without_affinity_denied if {
	pod := json.patch(fixtures.web_pod, [
		{"op": "remove", "path": "/spec/affinity"},
		{"op": "add", "path": "/metadata/labels/harbormaster.io~1exempt", "value": "true"},
	])
	fixtures.ids(deny_for(pod)) == {"HM-HG-004"}
}

test_authorized_exempt_pod_without_affinity_passes if {
	pod := json.patch(fixtures.web_pod, [
		{"op": "remove", "path": "/spec/affinity"},
		{"op": "add", "path": "/metadata/labels/harbormaster.io~1exempt", "value": "true"},
	])
	count(host_groups.deny) == 0 with input as fixtures.as_user(fixtures.pod_input(pod), fixtures.admin)
}

test_preexisting_missing_affinity_not_redenied_on_update if {
	old := fixtures.patched_pod([{"op": "remove", "path": "/spec/affinity"}])
	finalized := json.patch(old, [{"op": "add", "path": "/metadata/finalizers", "value": []}])
	count(host_groups.deny) == 0 with input as fixtures.pod_update(old, finalized)
}
