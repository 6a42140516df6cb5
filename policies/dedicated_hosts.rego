# METADATA
# title: Dedicated pools
# description: >-
#   Dedicated pool nodes are labelled and tainted
#   harbormaster.io/dedicated=<pool> (NoSchedule). Only the pool's owners
#   (its tenant, and its app if set) may tolerate or select them.
package harbormaster.dedicated_hosts

import data.harbormaster.lib

# METADATA
# title: No toleration for another owner's dedicated pool
# description: >-
#   A toleration with key harbormaster.io/dedicated (operator Equal or
#   empty) must name a pool the pod owns. Values naming no pool are denied
#   too: the pool may be created later.
# custom:
#   id: HM-DH-001
#   severity: critical
#   enforcement: deny
#   control: Only a pool's owners tolerate its dedicated taint.
deny contains violation if {
	lib.tenant_review
	key := lib.dedicated_key # a variable costs less to read per toleration than a rule
	some index, t in lib.tolerations
	object.get(t, "key", "") == key
	object.get(t, "operator", "Equal") in {"Equal", ""}
	value := object.get(t, "value", "")
	not value in lib.owned_pools
	lib.new_toleration(t)
	field := lib.toleration_field(index)
	violation := {
		"id": "HM-DH-001",
		"msg": sprintf("%s tolerates %s=%q, a dedicated pool this pod does not own (owned: %s)", [field, lib.dedicated_key, value, owned_list]),
		"field": field,
	}
}

# METADATA
# title: No Exists toleration on the dedicated taint key
# description: >-
#   A toleration with key harbormaster.io/dedicated and operator Exists
#   tolerates every pool; denied while any pool is not owned by the pod.
# custom:
#   id: HM-DH-002
#   severity: critical
#   enforcement: deny
#   control: A pod cannot tolerate dedicated pools it does not own by matching the taint key alone.
deny contains violation if {
	lib.tenant_review
	key := lib.dedicated_key # a variable costs less to read per toleration than a rule
	some index, t in lib.tolerations
	object.get(t, "key", "") == key
	object.get(t, "operator", "") == "Exists"
	count(lib.foreign_pools) > 0
	lib.new_toleration(t)
	field := lib.toleration_field(index)
	violation := {
		"id": "HM-DH-002",
		"msg": sprintf("%s tolerates every %s taint (operator Exists), including pools this pod does not own: %s; use operator Equal with an owned pool", [field, lib.dedicated_key, concat(", ", sort(lib.foreign_pools))]),
		"field": field,
	}
}

# METADATA
# title: No wildcard toleration on tenant pods
# description: >-
#   A toleration with an empty key and operator Exists tolerates every taint,
#   dedicated pools included, unless its effect excludes NoSchedule.
# custom:
#   id: HM-DH-003
#   severity: critical
#   enforcement: deny
#   control: Tenant pods cannot tolerate all taints.
deny contains violation if {
	lib.tenant_review
	some index, t in lib.tolerations
	object.get(t, "key", "") == ""
	object.get(t, "operator", "") == "Exists"
	object.get(t, "effect", "") in {"", lib.dedicated_taint_effect}
	lib.new_toleration(t)
	field := lib.toleration_field(index)
	violation := {
		"id": "HM-DH-003",
		"msg": sprintf("%s is a wildcard toleration (empty key, operator Exists) that tolerates every taint, dedicated pools included; tolerate specific keys instead", [field]),
		"field": field,
	}
}

# METADATA
# title: No node selection of another owner's dedicated pool
# description: >-
#   nodeSelector harbormaster.io/dedicated and required node affinity
#   requirements on that key may only point at owned pools: In values must
#   be owned, and Exists needs a NotIn of every foreign pool in the same term.
# custom:
#   id: HM-DH-004
#   severity: high
#   enforcement: deny
#   control: A pod cannot target the nodes of a dedicated pool it does not own.
deny contains violation if {
	lib.tenant_review
	some finding in foreign_pool_selections
	violation := {"id": "HM-DH-004", "msg": finding.msg, "field": finding.field}
}

foreign_pool_selections contains {"msg": msg, "field": field} if {
	pool := lib.node_selector[lib.dedicated_key]
	not pool in lib.owned_pools
	lib.spec_changed(["nodeSelector"])
	field := lib.node_selector_field(lib.dedicated_key)
	msg := sprintf("%s is %q, a dedicated pool this pod does not own (owned: %s)", [field, pool, owned_list])
}

foreign_pool_selections contains {"msg": msg, "field": field} if {
	lib.spec_changed(lib.required_affinity_path)
	some ti, term in lib.required_terms
	some ri, r in lib.term_expressions(term)
	lib.requirement_head(r) == [lib.dedicated_key, "In"]
	foreign := lib.requirement_values(r) - lib.owned_pools
	count(foreign) > 0
	field := sprintf("%s.matchExpressions[%d]", [lib.term_field(ti), ri])
	msg := sprintf("%s selects dedicated pool(s) %s, which this pod does not own (owned: %s)", [field, concat(", ", sort(foreign)), owned_list])
}

foreign_pool_selections contains {"msg": msg, "field": field} if {
	lib.spec_changed(lib.required_affinity_path)
	some ti, term in lib.required_terms
	some ri, r in lib.term_expressions(term)
	lib.requirement_head(r) == [lib.dedicated_key, "Exists"]
	count(lib.foreign_pools) > 0
	not fences_foreign_pools(term)
	field := sprintf("%s.matchExpressions[%d]", [lib.term_field(ti), ri])
	msg := sprintf("%s selects every dedicated node (operator Exists), including pools this pod does not own: %s", [field, concat(", ", sort(lib.foreign_pools))])
}

# fences_foreign_pools: the term also excludes every foreign pool, as the
# mutating webhook's NotIn requirement does.
fences_foreign_pools(term) if {
	some r in lib.term_expressions(term)
	lib.requirement_head(r) == [lib.dedicated_key, "NotIn"]
	count(lib.foreign_pools - lib.requirement_values(r)) == 0
}

owned_list := concat(", ", sort(lib.owned_pools)) if count(lib.owned_pools) > 0

else := "none"
