package harbormaster.tenancy_test

import data.harbormaster.tenancy

tenant := {
	"name": "team-a", "known": true, "hostGroups": ["general"], "defaultHostGroup": "general",
	"maxGPUsPerPod": null, "allowedGPUModels": [], "allowedRegistries": [],
}

pod_input(spec, labels, t) := {
	"request": {"kind": {"kind": "Pod"}, "object": {"metadata": {"labels": labels}, "spec": spec}},
	"namespace": {"name": "team-a-dev", "labels": {}},
	"tenant": t,
	"exempt_namespace": false,
}

test_node_name_denied if {
	some v in tenancy.deny with input as pod_input({"nodeName": "n1"}, {}, tenant)
	v.id == "HM-HG-001"
}

test_host_group_outside_tenant_denied if {
	some v in tenancy.deny with input as pod_input({}, {"harbormaster.io/host-group": "gpu"}, tenant)
	v.id == "HM-HG-002"
}

test_own_host_group_allowed if {
	count(tenancy.deny) == 0 with input as pod_input({}, {"harbormaster.io/host-group": "general"}, tenant)
}

test_unknown_tenant_denied if {
	some v in tenancy.deny with input as pod_input({}, {}, {"name": "ghost", "known": false})
	v.id == "HM-TEN-001"
}
