package harbormaster.lib_test

import data.harbormaster.fixtures
import data.harbormaster.lib

# --- image normalization ---------------------------------------------------

test_normalize_official_image if {
	lib.normalize_image("nginx") == "docker.io/library/nginx:latest"
	lib.normalize_image("nginx:1.25") == "docker.io/library/nginx:1.25"
	lib.normalize_image("library/nginx") == "docker.io/library/nginx:latest"
	lib.normalize_image("index.docker.io/library/nginx:1.25") == "docker.io/library/nginx:1.25"
}

test_normalize_docker_hub_user_image if {
	lib.normalize_image("team-a/app") == "docker.io/team-a/app:latest"
}

test_normalize_registry_with_port if {
	lib.normalize_image("registry.example.com:5000/team-a/app") == "registry.example.com:5000/team-a/app:latest"
	lib.normalize_image("registry.example.com:5000/team-a/app:1.0") == "registry.example.com:5000/team-a/app:1.0"
	lib.normalize_image("localhost:5000/app") == "localhost:5000/app:latest"
	lib.normalize_image("localhost/app:dev") == "localhost/app:dev"
}

test_normalize_digest if {
	lib.normalize_image("nginx@sha256:0123abcd") == "docker.io/library/nginx@sha256:0123abcd"
	lib.normalize_image("registry.example.com:5000/a/b:1.0@sha256:0123abcd") == "registry.example.com:5000/a/b:1.0@sha256:0123abcd"
}

test_normalize_keeps_other_registries if {
	lib.normalize_image("quay.io/org/app:v1") == "quay.io/org/app:v1"
	lib.normalize_image("ghcr.io/org/team/app") == "ghcr.io/org/team/app:latest"
}

test_image_prefix_boundary if {
	lib.image_has_prefix("registry.example.com/team-a/web:1", "registry.example.com/team-a/")
	lib.image_has_prefix("registry.example.com/team-a/web:1", "registry.example.com/team-a")
	lib.image_has_prefix("registry.example.com/team-a/web:1", "registry.example.com")
	lib.image_has_prefix("docker.io/library/nginx:latest", "docker.io/library/nginx")
	not lib.image_has_prefix("registry.example.com/team-ab/web:1", "registry.example.com/team-a")
	not lib.image_has_prefix("registry.example.com.evil.io/team-a/web:1", "registry.example.com")
	not lib.image_has_prefix("registry.example.com/team-a/web:1", "")
}

# --- pod spec of any object -------------------------------------------------

test_pod_spec_of_pod if {
	inp := fixtures.pod_input(fixtures.web_pod)
	lib.pod_spec == fixtures.web_pod.spec with input as inp
	lib.spec_path_prefix == "spec" with input as inp
	lib.metadata_path_prefix == "metadata" with input as inp
	lib.pod_labels["app.kubernetes.io/name"] == "web" with input as inp
}

test_pod_spec_of_deployment if {
	inp := fixtures.deployment_input(fixtures.web_template)
	lib.pod_spec == fixtures.web_template.spec with input as inp
	lib.spec_path_prefix == "spec.template.spec" with input as inp
	lib.label_field("a") == "spec.template.metadata.labels[a]" with input as inp
	lib.pod_labels == {"app.kubernetes.io/name": "web"} with input as inp
}

test_pod_spec_of_cronjob if {
	inp := fixtures.cronjob_input(fixtures.web_template)
	lib.pod_spec == fixtures.web_template.spec with input as inp
	lib.spec_path_prefix == "spec.jobTemplate.spec.template.spec" with input as inp
}

test_containers_lists_every_kind if {
	pod := fixtures.patched_pod([{"op": "add", "path": "/spec/ephemeralContainers", "value": [{"name": "debug", "image": "busybox"}]}])
	got := {[c.kind, c.index, c.name, c.field] | some c in lib.containers} with input as fixtures.pod_input(pod)
	got == {
		["containers", 0, "web", "spec.containers[0]"],
		["initContainers", 0, "migrate", "spec.initContainers[0]"],
		["ephemeralContainers", 0, "debug", "spec.ephemeralContainers[0]"],
	}
}

test_null_lists_are_empty if {
	pod := json.patch(fixtures.web_pod, [
		{"op": "replace", "path": "/spec/tolerations", "value": null},
		{"op": "replace", "path": "/metadata/labels", "value": null},
	])
	count(lib.tolerations) == 0 with input as fixtures.pod_input(pod)
	lib.pod_labels == {} with input as fixtures.pod_input(pod)
}

# --- scope --------------------------------------------------------------------

test_reviewable_create_and_update if {
	lib.reviewable with input as fixtures.pod_input(fixtures.web_pod)
	lib.reviewable with input as fixtures.pod_update(fixtures.web_pod, fixtures.web_pod)
	lib.reviewable with input as fixtures.deployment_input(fixtures.web_template)
}

test_not_reviewable_delete_connect if {
	del := object.union(fixtures.pod_input(fixtures.web_pod), {"request": {"operation": "DELETE"}})
	not lib.reviewable with input as del
	conn := object.union(fixtures.pod_input(fixtures.web_pod), {"request": {"operation": "CONNECT"}})
	not lib.reviewable with input as conn
}

test_reviewable_pod_subresources if {
	resize := object.union(fixtures.pod_input(fixtures.web_pod), {"request": {"operation": "UPDATE", "subResource": "resize"}})
	lib.reviewable with input as resize
	status := object.union(fixtures.pod_input(fixtures.web_pod), {"request": {"operation": "UPDATE", "subResource": "status"}})
	not lib.reviewable with input as status
	scale := object.union(fixtures.deployment_input(fixtures.web_template), {"request": {"operation": "UPDATE", "subResource": "scale"}})
	not lib.reviewable with input as scale
}

test_not_reviewable_foreign_group if {
	inp := object.union(fixtures.deployment_input(fixtures.web_template), {"request": {"kind": {"group": "example.com"}}})
	not lib.reviewable with input as inp
}

test_not_reviewable_exempt_namespace if {
	inp := object.union(fixtures.pod_input(fixtures.web_pod), {"exempt_namespace": true})
	not lib.reviewable with input as inp
	not lib.is_tenant_request with input as inp
}

test_tenant_request if {
	lib.is_tenant_request with input as fixtures.pod_input(fixtures.web_pod)
	no_tenant := object.union(fixtures.pod_input(fixtures.web_pod), {"tenant": null})
	not lib.is_tenant_request with input as no_tenant
}

# --- ownership and authorization ----------------------------------------------

test_owned_pools_by_app if {
	lib.owned_pools == {"team-a-db"} with input as fixtures.pod_input(fixtures.web_pod)
	lib.foreign_pools == {"spark-a", "gpu-b"} with input as fixtures.pod_input(fixtures.web_pod)
	lib.owned_pools == {"spark-a", "team-a-db"} with input as fixtures.pod_input(fixtures.spark_pod)
}

test_no_pools_without_tenant if {
	inp := object.union(fixtures.pod_input(fixtures.web_pod), {"tenant": null})
	lib.owned_pools == set() with input as inp
}

# The engine's config_index and the scans of input.config agree.
test_config_index_agrees_with_scans if {
	team_b := object.union(fixtures.pod_input(fixtures.web_pod), {"tenant": {"name": "team-b", "hostGroups": ["gpu", "secure"]}})
	every inp in [fixtures.pod_input(fixtures.web_pod), fixtures.pod_input(fixtures.spark_pod), team_b] {
		lib.owned_pools == lib.owned_pools with input as fixtures.indexed(inp)
		lib.foreign_pools == lib.foreign_pools with input as fixtures.indexed(inp)
	}
	inp := fixtures.pod_input(fixtures.web_pod)
	every group in ["general", "batch", "gpu", "secure"] {
		lib.group_requirements(group) == lib.group_requirements(group) with input as fixtures.indexed(inp)
	}
	not lib.group_requirements("undefined") with input as inp
	not lib.group_requirements("undefined") with input as fixtures.indexed(inp)
	every pair in [["harbormaster.io/host-group", "gpu"], ["topology.kubernetes.io/zone", "eu-1a"], ["kubernetes.io/os", "linux"]] {
		lib.host_groups_selecting(pair[0], pair[1]) == lib.host_groups_selecting(pair[0], pair[1]) with input as fixtures.indexed(inp)
	}
	lib.host_groups_selecting("topology.kubernetes.io/zone", "eu-1a") == {"gpu"} with input as fixtures.indexed(inp)
	lib.owned_pools == {"team-a-db"} with input as fixtures.indexed(inp)
}

test_host_group_requirements if {
	reqs := lib.host_group_requirements.gpu with input as fixtures.pod_input(fixtures.web_pod)
	reqs == {
		{"key": "harbormaster.io/host-group", "operator": "In", "values": {"gpu"}},
		{"key": "topology.kubernetes.io/zone", "operator": "In", "values": {"eu-1a"}},
		{"key": "nvidia.com/gpu.present", "operator": "In", "values": {"true"}},
	}
}

test_opt_out_authorization if {
	inp := fixtures.pod_input(fixtures.web_pod)
	not lib.opt_out_authorized with input as inp
	lib.opt_out_authorized with input as fixtures.as_user(inp, fixtures.admin)
	lib.opt_out_authorized with input as fixtures.as_user(inp, {"username": "alice@example.com", "groups": []})
	lib.opt_out_authorized with input as fixtures.as_user(inp, fixtures.replicaset_controller)
}

test_kube_system_trusted_for_pods_only if {
	inp := fixtures.as_user(fixtures.deployment_input(fixtures.web_template), fixtures.replicaset_controller)
	not lib.opt_out_authorized with input as inp
}

test_kube_system_trusted_for_controlled_replicaset if {
	rs := {
		"apiVersion": "apps/v1",
		"kind": "ReplicaSet",
		"metadata": {"name": "web-7d9f8c6b5", "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "controller": true}]},
		"spec": {"template": fixtures.web_template},
	}
	inp := fixtures.input_for({"group": "apps", "version": "v1", "kind": "ReplicaSet"}, rs)
	deployment_controller := {"username": "system:serviceaccount:kube-system:deployment-controller", "groups": []}
	lib.opt_out_authorized with input as fixtures.as_user(inp, deployment_controller)
	orphan := json.patch(rs, [{"op": "remove", "path": "/metadata/ownerReferences"}])
	orphan_inp := fixtures.input_for({"group": "apps", "version": "v1", "kind": "ReplicaSet"}, orphan)
	not lib.opt_out_authorized with input as fixtures.as_user(orphan_inp, deployment_controller)
}

test_service_account_outside_kube_system_not_trusted if {
	inp := fixtures.as_user(fixtures.pod_input(fixtures.web_pod), {"username": "system:serviceaccount:team-a-web:default", "groups": []})
	not lib.opt_out_authorized with input as inp
}

# --- UPDATE changes -------------------------------------------------------------

test_spec_changed if {
	lib.spec_changed(["nodeName"]) with input as fixtures.pod_input(fixtures.web_pod)
	not lib.spec_changed(["nodeName"]) with input as fixtures.pod_update(fixtures.web_pod, fixtures.web_pod)
	bound := json.patch(fixtures.web_pod, [{"op": "add", "path": "/spec/nodeName", "value": "node-1"}])
	lib.spec_changed(["nodeName"]) with input as fixtures.pod_update(fixtures.web_pod, bound)
}

test_update_without_old_object_reads_as_changed if {
	inp := object.union(fixtures.pod_input(fixtures.web_pod), {"request": {"operation": "UPDATE"}})
	lib.spec_changed(["tolerations"]) with input as inp
}

test_new_pod_template if {
	lib.new_pod_template with input as fixtures.pod_input(fixtures.web_pod)
	not lib.new_pod_template with input as fixtures.pod_update(fixtures.web_pod, fixtures.web_pod)
	old := fixtures.deployment(fixtures.web_template)
	scaled := json.patch(old, [{"op": "replace", "path": "/spec/replicas", "value": 5}])
	scale := object.union(fixtures.deployment_input(fixtures.web_template), {"request": {"operation": "UPDATE", "object": scaled, "oldObject": old}})
	not lib.new_pod_template with input as scale
	rolled := json.patch(old, [{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "registry.example.com/team-a/web:1.5.0"}])
	rollout := object.union(fixtures.deployment_input(fixtures.web_template), {"request": {"operation": "UPDATE", "object": rolled, "oldObject": old}})
	lib.new_pod_template with input as rollout
}

test_quantity if {
	lib.quantity("16Mi") == 16777216
	lib.quantity("500m") == 0.5
	lib.quantity("2") == 2
	lib.quantity(3) == 3
}
