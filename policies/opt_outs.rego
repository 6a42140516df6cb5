# METADATA
# title: Opt-outs
# description: >-
#   harbormaster.io/exempt=true skips every mutation and
#   harbormaster.io/qos=guaranteed skips overcommit. Only users or groups in
#   config.privileged may set them. Pods created by kube-system service
#   accounts (the built-in controllers) carry the decision of their
#   template's author, whose workload was checked when written; so do the
#   ReplicaSets and Jobs those controllers create for Deployments and
#   CronJobs (they carry a controller ownerReference).
package harbormaster.opt_outs

import data.harbormaster.lib

# METADATA
# title: Exempt label only by privileged users
# description: >-
#   The pod (or pod template) label harbormaster.io/exempt="true" may only
#   be set by a privileged user or group. On UPDATE it is judged when a Pod's
#   label changes or a workload's pod template changes.
# custom:
#   id: HM-OO-001
#   severity: high
#   enforcement: deny
#   control: Only privileged users can exempt pods from Harbormaster's mutations.
deny contains violation if {
	lib.reviewable
	lib.pod_labels[lib.exempt_label] == "true"
	opt_out_fresh(lib.exempt_label)
	not lib.opt_out_authorized
	field := lib.label_field(lib.exempt_label)
	violation := {
		"id": "HM-OO-001",
		"msg": sprintf("%s=\"true\" opts the pod out of every Harbormaster mutation; user %q is not in config.privileged (users or groups)", [field, lib.username]),
		"field": field,
	}
}

# METADATA
# title: Guaranteed QoS label only by privileged users
# description: >-
#   The pod (or pod template) label harbormaster.io/qos="guaranteed" keeps
#   requests equal to limits and may only be set by a privileged user or
#   group. Same UPDATE handling as HM-OO-001.
# custom:
#   id: HM-OO-002
#   severity: medium
#   enforcement: deny
#   control: Only privileged users can opt pods out of overcommit.
deny contains violation if {
	lib.reviewable
	lib.pod_labels[lib.qos_label] == "guaranteed"
	opt_out_fresh(lib.qos_label)
	not lib.opt_out_authorized
	field := lib.label_field(lib.qos_label)
	violation := {
		"id": "HM-OO-002",
		"msg": sprintf("%s=\"guaranteed\" opts the pod out of overcommit; user %q is not in config.privileged (users or groups)", [field, lib.username]),
		"field": field,
	}
}

# A Pod's spec is mostly immutable, so an existing label grants nothing new;
# a workload's changed template is new pods, whose controller is trusted.
opt_out_fresh(key) if {
	lib.is_pod
	lib.label_changed(key)
}

opt_out_fresh(_) if {
	lib.is_workload
	lib.new_pod_template
}
