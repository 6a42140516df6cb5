# METADATA
# title: Image registries
# description: >-
#   A tenant's images come only from its allowed registries.
package harbormaster.registries

import data.harbormaster.lib

# METADATA
# title: Images come from the tenant's allowed registries
# description: >-
#   When the tenant lists allowedRegistries, every image of containers, init
#   containers and ephemeral containers, normalized (nginx ->
#   docker.io/library/nginx:latest), must start with one of them at a path,
#   tag or digest boundary.
# custom:
#   id: HM-RG-001
#   severity: high
#   enforcement: deny
#   control: A tenant's pods only run images from the tenant's allowed registries.
deny contains violation if {
	lib.tenant_review
	count(allowed) > 0
	some entry in lib.containers
	image := object.get(entry.container, "image", "")
	normalized := lib.normalized_image(image)
	not allowed_image(normalized)
	lib.container_changed(entry, ["image"])
	field := sprintf("%s.image", [entry.field])
	violation := {
		"id": "HM-RG-001",
		"msg": sprintf("%s %q (%s) is not from a registry tenant %q may use (allowed: %s)", [field, image, normalized, lib.tenant_name, concat(", ", allowed)]),
		"field": field,
	}
}

allowed := [p | some p in prefixes; is_string(p); p != ""] if {
	prefixes := lib.tenant.allowedRegistries
	is_array(prefixes)
} else := []

allowed_image(image) if {
	some prefix in allowed
	lib.image_has_prefix(image, prefix)
}
