package harbormaster.opt_outs_test

import data.harbormaster.fixtures
import data.harbormaster.opt_outs

exempt_op := {"op": "add", "path": "/metadata/labels/harbormaster.io~1exempt", "value": "true"}

guaranteed_op := {"op": "add", "path": "/metadata/labels/harbormaster.io~1qos", "value": "guaranteed"}

exempt_pod := fixtures.patched_pod([exempt_op])

exempt_template := json.patch(fixtures.web_template, [exempt_op])

test_plain_pod_passes if {
	count(opt_outs.deny) == 0 with input as fixtures.pod_input(fixtures.web_pod)
}

# --- HM-OO-001 exempt --------------------------------------------------------------

test_exempt_by_tenant_user_denied if {
	violations := opt_outs.deny with input as fixtures.pod_input(exempt_pod)
	fixtures.ids(violations) == {"HM-OO-001"}
	fixtures.fields(violations) == {"metadata.labels[harbormaster.io/exempt]"}
}

test_exempt_by_privileged_user_passes if {
	inp := fixtures.as_user(fixtures.pod_input(exempt_pod), {"username": "alice@example.com", "groups": ["system:authenticated"]})
	count(opt_outs.deny) == 0 with input as inp
}

test_exempt_by_privileged_group_passes if {
	count(opt_outs.deny) == 0 with input as fixtures.as_user(fixtures.pod_input(exempt_pod), fixtures.admin)
}

test_exempt_pod_from_kube_system_controller_passes if {
	count(opt_outs.deny) == 0 with input as fixtures.as_user(fixtures.pod_input(exempt_pod), fixtures.replicaset_controller)
}

test_lookalike_username_denied if {
	inp := fixtures.as_user(fixtures.pod_input(exempt_pod), {"username": "system:serviceaccount:kube-systemx:evil", "groups": ["kube-system"]})
	fixtures.ids(opt_outs.deny) == {"HM-OO-001"} with input as inp
}

test_other_exempt_values_are_not_opt_outs if {
	# The mutation only honours the exact value "true".
	pod := fixtures.patched_pod([{"op": "add", "path": "/metadata/labels/harbormaster.io~1exempt", "value": "True"}])
	count(opt_outs.deny) == 0 with input as fixtures.pod_input(pod)
}

test_exempt_deployment_template_denied if {
	violations := opt_outs.deny with input as fixtures.deployment_input(exempt_template)
	fixtures.ids(violations) == {"HM-OO-001"}
	fixtures.fields(violations) == {"spec.template.metadata.labels[harbormaster.io/exempt]"}
}

test_exempt_deployment_from_kube_system_denied if {
	# kube-system service accounts are trusted for the objects controllers
	# create, not for Deployments.
	inp := fixtures.as_user(fixtures.deployment_input(exempt_template), fixtures.replicaset_controller)
	fixtures.ids(opt_outs.deny) == {"HM-OO-001"} with input as inp
}

test_exempt_cronjob_by_admin_passes if {
	count(opt_outs.deny) == 0 with input as fixtures.as_user(fixtures.cronjob_input(exempt_template), fixtures.admin)
}

test_exempt_label_added_on_update_denied if {
	fixtures.ids(opt_outs.deny) == {"HM-OO-001"} with input as fixtures.pod_update(fixtures.web_pod, exempt_pod)
}

test_existing_exempt_label_kept_on_update_passes if {
	relabelled := json.patch(exempt_pod, [{"op": "add", "path": "/metadata/labels/release", "value": "canary"}])
	count(opt_outs.deny) == 0 with input as fixtures.pod_update(exempt_pod, relabelled)
}

test_tenant_edit_of_exempt_deployment_template_denied if {
	old := fixtures.deployment(exempt_template)
	edited := json.patch(old, [{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "registry.example.com/team-a/web:2.0"}])
	inp := object.union(fixtures.deployment_input(exempt_template), {"request": {"operation": "UPDATE", "object": edited, "oldObject": old}})
	fixtures.ids(opt_outs.deny) == {"HM-OO-001"} with input as inp
}

test_scaling_exempt_deployment_passes if {
	old := fixtures.deployment(exempt_template)
	scaled := json.patch(old, [{"op": "replace", "path": "/spec/replicas", "value": 6}])
	inp := object.union(fixtures.deployment_input(exempt_template), {"request": {"operation": "UPDATE", "object": scaled, "oldObject": old}})
	count(opt_outs.deny) == 0 with input as inp
}

test_exempt_outside_tenant_namespaces_denied if {
	inp := object.union(fixtures.pod_input(exempt_pod), {"tenant": null, "namespace": {"name": "scratch", "labels": {}}})
	fixtures.ids(opt_outs.deny) == {"HM-OO-001"} with input as inp
}

test_exempt_in_exempt_namespace_allowed if {
	inp := object.union(fixtures.pod_input(exempt_pod), {"exempt_namespace": true})
	count(opt_outs.deny) == 0 with input as inp
}

# --- HM-OO-002 guaranteed QoS -------------------------------------------------------

test_guaranteed_by_tenant_user_denied if {
	violations := opt_outs.deny with input as fixtures.pod_input(fixtures.patched_pod([guaranteed_op]))
	fixtures.ids(violations) == {"HM-OO-002"}
	fixtures.fields(violations) == {"metadata.labels[harbormaster.io/qos]"}
}

test_guaranteed_by_privileged_group_passes if {
	inp := fixtures.as_user(fixtures.pod_input(fixtures.patched_pod([guaranteed_op])), fixtures.admin)
	count(opt_outs.deny) == 0 with input as inp
}

test_both_opt_outs_denied if {
	pod := fixtures.patched_pod([exempt_op, guaranteed_op])
	fixtures.ids(opt_outs.deny) == {"HM-OO-001", "HM-OO-002"} with input as fixtures.pod_input(pod)
}

test_guaranteed_statefulset_template_denied if {
	template := json.patch(fixtures.web_template, [guaranteed_op])
	sts := {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"}, "spec": {"serviceName": "db", "template": template}}
	inp := fixtures.input_for({"group": "apps", "version": "v1", "kind": "StatefulSet"}, sts)
	fixtures.fields(opt_outs.deny) == {"spec.template.metadata.labels[harbormaster.io/qos]"} with input as inp
}
