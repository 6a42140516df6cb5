package harbormaster.tenancy

import data.harbormaster.lib

# METADATA
# title: Namespace names an unknown tenant
# description: |
#   A namespace labelled harbormaster.io/tenant must name a tenant of the
#   configuration; otherwise its pods would escape confinement.
# custom:
#   id: HM-TEN-001
#   severity: high
#   enforcement: deny
#   control: TEN-1
deny contains violation if {
	lib.pod
	not input.exempt_namespace
	input.tenant.known == false
	violation := {
		"id": "HM-TEN-001",
		"msg": sprintf("namespace %s names unknown tenant %q", [input.namespace.name, input.tenant.name]),
		"field": "metadata.namespace",
	}
}

# METADATA
# title: Pod pins a node
# description: Tenant pods must not set spec.nodeName; placement is the scheduler's job.
# custom:
#   id: HM-HG-001
#   severity: high
#   enforcement: deny
#   control: [TEN-2, PLC-1]
deny contains violation if {
	lib.governed
	not lib.privileged
	node := lib.pod.spec.nodeName
	violation := {
		"id": "HM-HG-001",
		"msg": sprintf("pod pins node %s; tenant pods are placed by host group", [node]),
		"field": "spec.nodeName",
	}
}

# METADATA
# title: Host group outside the tenant
# description: The pod's host-group label must be one of its tenant's host groups.
# custom:
#   id: HM-HG-002
#   severity: medium
#   enforcement: deny
#   control: TEN-2
deny contains violation if {
	lib.governed
	group := lib.pod.metadata.labels["harbormaster.io/host-group"]
	count(input.tenant.hostGroups) > 0
	not group in input.tenant.hostGroups
	violation := {
		"id": "HM-HG-002",
		"msg": sprintf("host group %q is not one of tenant %s's groups %v", [group, input.tenant.name, input.tenant.hostGroups]),
		"field": "metadata.labels[\"harbormaster.io/host-group\"]",
	}
}
