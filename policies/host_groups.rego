# METADATA
# title: Host-group confinement
# description: >-
#   A tenant's pods may only be placed on nodes of the tenant's host groups.
#   The mutating webhook confines pods; these rules catch what it missed
#   (webhook outage, workload templates, hand-written fields).
package harbormaster.host_groups

import data.harbormaster.lib

# METADATA
# title: No spec.nodeName on tenant pods
# description: >-
#   spec.nodeName binds a pod to a node without the scheduler, skipping node
#   affinity and NoSchedule taints, hence every confinement. Denied on CREATE
#   and whenever an UPDATE changes it; the scheduler's own binding is not
#   re-judged.
# custom:
#   id: HM-HG-001
#   severity: critical
#   enforcement: deny
#   control: Tenant pods are placed by the scheduler, never pinned to a node by name.
deny contains violation if {
	lib.tenant_review
	node_name := object.get(lib.pod_spec, "nodeName", "")
	node_name != ""
	lib.spec_changed(["nodeName"])
	field := lib.spec_field("nodeName")
	violation := {
		"id": "HM-HG-001",
		"msg": sprintf("%s is set to %q: tenant %q pods must be placed by the scheduler within their host groups; remove %s", [field, node_name, lib.tenant_name, field]),
		"field": field,
	}
}

# METADATA
# title: Host-group label and nodeSelector name an allowed group
# description: >-
#   The pod label and nodeSelector harbormaster.io/host-group must name one
#   of the tenant's host groups. Tenants without host groups are not confined
#   and not checked.
# custom:
#   id: HM-HG-002
#   severity: high
#   enforcement: deny
#   control: A tenant pod can only pick host groups its tenant may use.
deny contains violation if {
	lib.tenant_review
	some finding in foreign_group_names
	violation := {"id": "HM-HG-002", "msg": finding.msg, "field": finding.field}
}

foreign_group_names contains {"msg": msg, "field": field} if {
	count(lib.tenant_host_groups) > 0
	group := lib.pod_labels[lib.host_group_label]
	not group in lib.tenant_host_groups
	lib.label_changed(lib.host_group_label)
	field := lib.label_field(lib.host_group_label)
	msg := sprintf("%s is %q, not a host group of tenant %q (allowed: %s)", [field, group, lib.tenant_name, allowed_list])
}

foreign_group_names contains {"msg": msg, "field": field} if {
	count(lib.tenant_host_groups) > 0
	group := lib.node_selector[lib.host_group_label]
	not group in lib.tenant_host_groups
	lib.spec_changed(["nodeSelector"])
	field := lib.node_selector_field(lib.host_group_label)
	msg := sprintf("%s is %q, not a host group of tenant %q (allowed: %s)", [field, group, lib.tenant_name, allowed_list])
}

allowed_list := concat(", ", sort(lib.tenant_host_groups))

# METADATA
# title: nodeSelector does not select a foreign host group
# description: >-
#   A nodeSelector entry key=value that a foreign host group's selector uses
#   (matchLabels or an In expression), and that no allowed group uses, steers
#   the pod to that group's nodes.
# custom:
#   id: HM-HG-003
#   severity: high
#   enforcement: deny
#   control: A tenant pod's nodeSelector cannot target another tenant's host group.
deny contains violation if {
	lib.tenant_review
	count(lib.tenant_host_groups) > 0
	lib.spec_changed(["nodeSelector"])
	some key, value in lib.node_selector
	foreign := {group |
		some group in lib.host_groups_selecting(key, value)
		not group in lib.tenant_host_groups
	}
	count(foreign) > 0
	not allowed_pair(key, value)
	field := lib.node_selector_field(key)
	violation := {
		"id": "HM-HG-003",
		"msg": sprintf("%s=%q selects nodes of host group(s) %s, which tenant %q may not use (allowed: %s)", [field, value, concat(", ", sort(foreign)), lib.tenant_name, allowed_list]),
		"field": field,
	}
}

# allowed_pair: an allowed group also requires key=value, so the pair selects
# nodes the tenant may use too. host_groups_selecting is a lookup in
# input.config_index: scanning every host group for each nodeSelector entry
# grew with the number of tenants.
allowed_pair(key, value) if {
	some group in lib.host_groups_selecting(key, value)
	group in lib.tenant_host_groups
}

# METADATA
# title: Required node affinity confines the pod to its host groups
# description: >-
#   For Pods of a tenant with host groups, every non-empty required
#   nodeSelectorTerm (terms are ORed) must contain all requirements of one
#   allowed host group, or a harbormaster.io/dedicated In requirement naming
#   only pools the pod owns. No required affinity at all means the pod
#   bypassed the mutating webhook. Pods labelled exempt by an authorized
#   user are not mutated and not checked here. Workload templates are
#   checked when their pods are created.
# custom:
#   id: HM-HG-004
#   severity: critical
#   enforcement: deny
#   control: Every node a tenant pod may schedule to lies in one of its host groups or owned dedicated pools.
deny contains violation if {
	lib.tenant_review
	lib.is_pod
	count(lib.allowed_host_groups) > 0
	not lib.exempt_authorized
	lib.spec_changed(lib.required_affinity_path)
	some finding in unconfined_affinity
	violation := {"id": "HM-HG-004", "msg": finding.msg, "field": finding.field}
}

unconfined_affinity contains {"msg": msg, "field": field} if {
	count(lib.required_terms) == 0
	field := lib.required_affinity_field
	msg := sprintf("%s is missing: tenant %q pods must be confined to host group(s) %s (was the pod admitted without the mutating webhook?)", [field, lib.tenant_name, allowed_list])
}

unconfined_affinity contains {"msg": msg, "field": field} if {
	some index, term in lib.required_terms
	not term_confined(term)
	field := lib.term_field(index)
	msg := sprintf("%s does not contain the node requirements of any host group of tenant %q (%s) nor harbormaster.io/dedicated In <owned pools>; as terms are ORed, this term lets the pod escape its host groups", [field, lib.tenant_name, allowed_list])
}

# The term holds every requirement of an allowed group, or an owned-pool In.
# An else chain, most common case first: the mutating webhook writes the
# group's requirements. Requirements are compared one by one, values last,
# so that the term's NotIn fence, which lists every foreign pool, is never
# normalized.
term_confined(term) if {
	exprs := lib.term_expressions(term)
	some group in lib.allowed_host_groups
	every req in lib.group_requirements(group) {
		some r in exprs
		lib.requirement_head(r) == [req.key, req.operator]
		sort(lib.requirement_values(r)) == req.values
	}
} else if {
	some r in lib.term_expressions(term)
	lib.requirement_head(r) == [lib.dedicated_key, "In"]
	values := lib.requirement_values(r)
	count(values) > 0
	count(values - lib.owned_pools) == 0
} else if {
	lib.empty_term(term)
}
