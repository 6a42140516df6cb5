package harbormaster.namespaces_test

import data.harbormaster.fixtures
import data.harbormaster.namespaces

no_tenant_input := object.union(
	fixtures.pod_input(fixtures.web_pod),
	{"tenant": null, "namespace": {"name": "scratch", "labels": {}}, "request": {"namespace": "scratch"}},
)

unknown_tenant_input := object.union(
	fixtures.pod_input(fixtures.web_pod),
	{
		"tenant": {"name": "team-z", "known": false, "hostGroups": [], "allowedRegistries": [], "allowedGPUModels": [], "maxGPUsPerPod": null},
		"namespace": {"name": "team-z-api", "labels": {"harbormaster.io/tenant": "team-z"}},
	},
)

test_tenant_namespace_passes if {
	count(namespaces.deny) == 0 with input as fixtures.pod_input(fixtures.web_pod)
	count(namespaces.deny) == 0 with input as fixtures.deployment_input(fixtures.web_template)
}

test_namespace_without_tenant_denied if {
	violations := namespaces.deny with input as no_tenant_input
	fixtures.ids(violations) == {"HM-NS-001"}
	fixtures.fields(violations) == {""}
}

test_workload_without_tenant_denied if {
	inp := object.union(fixtures.deployment_input(fixtures.web_template), {"tenant": null, "namespace": {"name": "scratch", "labels": {}}})
	fixtures.ids(namespaces.deny) == {"HM-NS-001"} with input as inp
}

test_absent_tenant_denied if {
	inp := json.patch(no_tenant_input, [{"op": "remove", "path": "/tenant"}])
	fixtures.ids(namespaces.deny) == {"HM-NS-001"} with input as inp
}

test_unknown_tenant_denied if {
	violations := namespaces.deny with input as unknown_tenant_input
	fixtures.ids(violations) == {"HM-NS-002"}
	some v in violations
	contains(v.msg, "team-z")
}

test_exempt_namespace_without_tenant_allowed if {
	inp := object.union(no_tenant_input, {"exempt_namespace": true})
	count(namespaces.deny) == 0 with input as inp
}

test_delete_without_tenant_allowed if {
	inp := object.union(no_tenant_input, {"request": {"operation": "DELETE"}})
	count(namespaces.deny) == 0 with input as inp
}

test_pod_update_without_tenant_not_denied if {
	# The namespace lost its label after the pod was created: updates such as
	# finalizer removal must still go through.
	inp := object.union(no_tenant_input, {"request": {"operation": "UPDATE", "oldObject": fixtures.web_pod}})
	count(namespaces.deny) == 0 with input as inp
}
