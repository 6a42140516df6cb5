package harbormaster.registries_test

import data.harbormaster.fixtures
import data.harbormaster.registries

with_image(path, image) := fixtures.patched_pod([{"op": "replace", "path": path, "value": image}])

deny_for(pod) := violations if {
	violations := registries.deny with input as fixtures.pod_input(pod)
}

test_allowed_registries_pass if {
	count(deny_for(fixtures.web_pod)) == 0
}

test_official_image_normalized_and_allowed if {
	# "nginx" is docker.io/library/nginx:latest, inside "docker.io/library/".
	count(deny_for(with_image("/spec/containers/0/image", "nginx"))) == 0
	count(deny_for(with_image("/spec/containers/0/image", "nginx:1.25@sha256:0123abcd"))) == 0
}

test_foreign_registry_denied if {
	violations := deny_for(with_image("/spec/containers/0/image", "quay.io/evil/miner:latest"))
	fixtures.ids(violations) == {"HM-RG-001"}
	fixtures.fields(violations) == {"spec.containers[0].image"}
}

test_docker_hub_user_image_denied if {
	# "team-a/web" is docker.io/team-a/web, not registry.example.com/team-a/.
	fixtures.ids(deny_for(with_image("/spec/containers/0/image", "team-a/web:1.0"))) == {"HM-RG-001"}
}

test_init_container_image_denied if {
	violations := deny_for(with_image("/spec/initContainers/0/image", "ghcr.io/other/migrate:2"))
	fixtures.fields(violations) == {"spec.initContainers[0].image"}
}

test_ephemeral_container_image_denied if {
	pod := fixtures.patched_pod([{"op": "add", "path": "/spec/ephemeralContainers", "value": [{"name": "debug", "image": "quay.io/tools/netshoot"}]}])
	inp := object.union(fixtures.pod_update(fixtures.web_pod, pod), {"request": {"subResource": "ephemeralcontainers"}})
	violations := registries.deny with input as inp
	fixtures.fields(violations) == {"spec.ephemeralContainers[0].image"}
}

test_prefix_lookalike_denied if {
	fixtures.ids(deny_for(with_image("/spec/containers/0/image", "registry.example.com/team-ab/web:1"))) == {"HM-RG-001"}
	fixtures.ids(deny_for(with_image("/spec/containers/0/image", "registry.example.com.evil.io/team-a/web:1"))) == {"HM-RG-001"}
	fixtures.ids(deny_for(with_image("/spec/containers/0/image", "registry.example.com:443/team-a/web:1"))) == {"HM-RG-001"}
}

test_prefix_without_trailing_slash_respects_boundary if {
	pod := with_image("/spec/containers/0/image", "registry.example.com/team-ab/web:1")
	inp := object.union(fixtures.pod_input(pod), {"tenant": {"allowedRegistries": ["registry.example.com/team-a"]}})
	fixtures.ids(registries.deny) == {"HM-RG-001"} with input as inp
	ok := object.union(fixtures.pod_input(fixtures.web_pod), {"tenant": {"allowedRegistries": ["registry.example.com/team-a"]}})
	count(registries.deny) == 0 with input as ok
}

test_registry_with_port_allowed if {
	pod := with_image("/spec/containers/0/image", "registry.example.com:5000/team-a/web:1")
	inp := object.union(fixtures.pod_input(pod), {"tenant": {"allowedRegistries": ["registry.example.com:5000/team-a/", "registry.example.com/team-a/"]}})
	count(registries.deny) == 0 with input as inp
}

test_empty_list_allows_any if {
	pod := with_image("/spec/containers/0/image", "quay.io/evil/miner:latest")
	inp := object.union(fixtures.pod_input(pod), {"tenant": {"allowedRegistries": []}})
	count(registries.deny) == 0 with input as inp
}

test_cronjob_template_image_denied if {
	template := json.patch(fixtures.web_template, [{"op": "replace", "path": "/spec/containers/0/image", "value": "quay.io/evil/miner"}])
	violations := registries.deny with input as fixtures.cronjob_input(template)
	fixtures.fields(violations) == {"spec.jobTemplate.spec.template.spec.containers[0].image"}
}

test_image_changed_on_update_denied if {
	pod := with_image("/spec/containers/0/image", "quay.io/evil/miner:latest")
	fixtures.ids(registries.deny) == {"HM-RG-001"} with input as fixtures.pod_update(fixtures.web_pod, pod)
}

test_unchanged_image_not_redenied_after_list_change if {
	pod := fixtures.web_pod
	relabelled := json.patch(pod, [{"op": "add", "path": "/metadata/labels/release", "value": "canary"}])
	inp := object.union(fixtures.pod_update(pod, relabelled), {"tenant": {"allowedRegistries": ["registry.example.com/team-b/"]}})
	count(registries.deny) == 0 with input as inp
}

test_exempt_namespace_allowed if {
	pod := with_image("/spec/containers/0/image", "quay.io/evil/miner:latest")
	inp := object.union(fixtures.pod_input(pod), {"exempt_namespace": true})
	count(registries.deny) == 0 with input as inp
}
