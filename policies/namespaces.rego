# METADATA
# title: Namespace tenancy
# description: >-
#   Every pod and workload outside exempt namespaces belongs to a configured
#   tenant through its namespace's harbormaster.io/tenant label.
package harbormaster.namespaces

import data.harbormaster.lib

# METADATA
# title: Namespace has a tenant
# description: >-
#   Pods and workloads in a non-exempt namespace without the
#   harbormaster.io/tenant label are denied: nothing would confine them.
#   Judged on CREATE and on workload UPDATEs that change the pod template.
# custom:
#   id: HM-NS-001
#   severity: high
#   enforcement: deny
#   control: Every workload namespace belongs to a tenant.
deny contains violation if {
	lib.reviewable
	lib.new_pod_template
	not has_tenant
	violation := {
		"id": "HM-NS-001",
		"msg": sprintf("namespace %q has no %s label: pods may only run in tenant namespaces (or namespaces exempted in the Harbormaster config)", [namespace_name, lib.tenant_label]),
		"field": "",
	}
}

# METADATA
# title: Namespace tenant is configured
# description: >-
#   The namespace's harbormaster.io/tenant label must name a tenant of the
#   Harbormaster config; an unknown tenant has no host groups to confine to.
# custom:
#   id: HM-NS-002
#   severity: high
#   enforcement: deny
#   control: A namespace's tenant label names a configured tenant.
deny contains violation if {
	lib.reviewable
	lib.new_pod_template
	has_tenant
	object.get(input.tenant, "known", false) != true
	violation := {
		"id": "HM-NS-002",
		"msg": sprintf("namespace %q has %s=%q, which names no tenant in the Harbormaster config", [namespace_name, lib.tenant_label, lib.tenant_name]),
		"field": "",
	}
}

has_tenant if is_object(input.tenant)

namespace_name := n if {
	n := object.get(input, ["namespace", "name"], "")
	n != ""
} else := object.get(input, ["request", "namespace"], "")
