package harbormaster.dedicated_hosts_test

import data.harbormaster.dedicated_hosts
import data.harbormaster.fixtures

with_toleration(t) := fixtures.patched_pod([{"op": "add", "path": "/spec/tolerations/-", "value": t}])

deny_for(pod) := violations if {
	violations := dedicated_hosts.deny with input as fixtures.pod_input(pod)
}

terms_path := "/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms"

general := {"key": "harbormaster.io/host-group", "operator": "In", "values": ["general"]}

# --- compliant --------------------------------------------------------------------

test_mutated_pods_pass if {
	count(deny_for(fixtures.web_pod)) == 0
	count(deny_for(fixtures.spark_pod)) == 0
}

test_other_tolerations_pass if {
	pod := with_toleration({"key": "example.com/spot", "operator": "Exists", "effect": "NoSchedule"})
	count(deny_for(pod)) == 0
}

test_owned_pool_node_selector_passes if {
	pod := fixtures.patched_pod([{"op": "add", "path": "/spec/nodeSelector", "value": {"harbormaster.io/dedicated": "team-a-db"}}])
	count(deny_for(pod)) == 0
}

# --- HM-DH-001 foreign pool toleration ------------------------------------------------

test_foreign_pool_toleration_denied if {
	pod := with_toleration({"key": "harbormaster.io/dedicated", "operator": "Equal", "value": "gpu-b", "effect": "NoSchedule"})
	violations := deny_for(pod)
	fixtures.ids(violations) == {"HM-DH-001"}
	fixtures.fields(violations) == {"spec.tolerations[2]"}
}

test_foreign_pool_toleration_without_operator_denied if {
	# An empty operator means Equal.
	pod := with_toleration({"key": "harbormaster.io/dedicated", "value": "gpu-b"})
	fixtures.ids(deny_for(pod)) == {"HM-DH-001"}
}

test_other_apps_pool_toleration_denied if {
	# spark-a is team-a's, but only for its spark app.
	pod := with_toleration({"key": "harbormaster.io/dedicated", "operator": "Equal", "value": "spark-a", "effect": "NoSchedule"})
	fixtures.ids(deny_for(pod)) == {"HM-DH-001"}
}

test_unknown_pool_toleration_denied if {
	pod := with_toleration({"key": "harbormaster.io/dedicated", "operator": "Equal", "value": "future-pool"})
	fixtures.ids(deny_for(pod)) == {"HM-DH-001"}
}

test_added_toleration_on_update_denied if {
	pod := with_toleration({"key": "harbormaster.io/dedicated", "operator": "Equal", "value": "gpu-b", "effect": "NoSchedule"})
	fixtures.ids(dedicated_hosts.deny) == {"HM-DH-001"} with input as fixtures.pod_update(fixtures.web_pod, pod)
}

test_existing_toleration_not_redenied_on_update if {
	pod := with_toleration({"key": "harbormaster.io/dedicated", "operator": "Equal", "value": "gpu-b", "effect": "NoSchedule"})
	relabelled := json.patch(pod, [{"op": "add", "path": "/metadata/labels/release", "value": "canary"}])
	count(dedicated_hosts.deny) == 0 with input as fixtures.pod_update(pod, relabelled)
}

# --- HM-DH-002 Exists on the dedicated key -------------------------------------------

test_exists_on_dedicated_key_denied if {
	pod := with_toleration({"key": "harbormaster.io/dedicated", "operator": "Exists"})
	violations := deny_for(pod)
	fixtures.ids(violations) == {"HM-DH-002"}
	fixtures.fields(violations) == {"spec.tolerations[2]"}
}

test_exists_on_dedicated_key_allowed_when_all_pools_owned if {
	pod := with_toleration({"key": "harbormaster.io/dedicated", "operator": "Exists", "effect": "NoSchedule"})
	inp := json.patch(fixtures.pod_input(pod), [{"op": "replace", "path": "/config/dedicatedPools", "value": {"team-a-db": {"tenant": "team-a", "placement": "preferred"}}}])
	count(dedicated_hosts.deny) == 0 with input as inp
}

# --- HM-DH-003 wildcard toleration -------------------------------------------------------

test_wildcard_toleration_denied if {
	pod := with_toleration({"operator": "Exists"})
	violations := deny_for(pod)
	fixtures.ids(violations) == {"HM-DH-003"}
	fixtures.fields(violations) == {"spec.tolerations[2]"}
}

test_wildcard_no_schedule_toleration_denied if {
	pod := with_toleration({"key": "", "operator": "Exists", "effect": "NoSchedule"})
	fixtures.ids(deny_for(pod)) == {"HM-DH-003"}
}

test_wildcard_no_execute_toleration_allowed if {
	# Cannot tolerate the NoSchedule dedicated taint.
	pod := with_toleration({"operator": "Exists", "effect": "NoExecute"})
	count(deny_for(pod)) == 0
}

test_wildcard_in_deployment_template_denied if {
	template := json.patch(fixtures.web_template, [{"op": "add", "path": "/spec/tolerations", "value": [{"operator": "Exists"}]}])
	violations := dedicated_hosts.deny with input as fixtures.deployment_input(template)
	fixtures.fields(violations) == {"spec.template.spec.tolerations[0]"}
}

test_wildcard_in_exempt_namespace_allowed if {
	pod := with_toleration({"operator": "Exists"})
	inp := object.union(fixtures.pod_input(pod), {"exempt_namespace": true})
	count(dedicated_hosts.deny) == 0 with input as inp
}

# --- HM-DH-004 selecting foreign pools ----------------------------------------------------

test_foreign_pool_node_selector_denied if {
	pod := fixtures.patched_pod([{"op": "add", "path": "/spec/nodeSelector", "value": {"harbormaster.io/dedicated": "gpu-b"}}])
	violations := deny_for(pod)
	fixtures.ids(violations) == {"HM-DH-004"}
	fixtures.fields(violations) == {"spec.nodeSelector[harbormaster.io/dedicated]"}
}

test_foreign_pool_affinity_denied if {
	pod := json.patch(fixtures.spark_pod, [{"op": "replace", "path": concat("", [terms_path, "/0/matchExpressions/0/values"]), "value": ["spark-a", "gpu-b"]}])
	violations := deny_for(pod)
	fixtures.ids(violations) == {"HM-DH-004"}
	fixtures.fields(violations) == {"spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0]"}
}

test_dedicated_exists_affinity_without_fence_denied if {
	pod := fixtures.patched_pod([{"op": "replace", "path": terms_path, "value": [{"matchExpressions": [general, {"key": "harbormaster.io/dedicated", "operator": "Exists"}]}]}])
	fixtures.ids(deny_for(pod)) == {"HM-DH-004"}
}

test_dedicated_exists_affinity_with_fence_passes if {
	pod := fixtures.patched_pod([{"op": "replace", "path": terms_path, "value": [{"matchExpressions": [
		general,
		{"key": "harbormaster.io/dedicated", "operator": "Exists"},
		{"key": "harbormaster.io/dedicated", "operator": "NotIn", "values": ["spark-a", "gpu-b"]},
	]}]}])
	count(deny_for(pod)) == 0
}

test_foreign_pool_in_cronjob_template_denied if {
	template := json.patch(fixtures.web_template, [{"op": "add", "path": "/spec/nodeSelector", "value": {"harbormaster.io/dedicated": "spark-a"}}])
	violations := dedicated_hosts.deny with input as fixtures.cronjob_input(template)
	fixtures.fields(violations) == {"spec.jobTemplate.spec.template.spec.nodeSelector[harbormaster.io/dedicated]"}
}
