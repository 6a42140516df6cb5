package harbormaster.registry

import data.harbormaster.lib

# METADATA
# title: Image from a registry the tenant may not use
# description: Every container image must start with one of the tenant's allowedRegistries.
# custom:
#   id: HM-REG-001
#   severity: medium
#   enforcement: dryrun
#   control: SUP-1
deny contains violation if {
	lib.governed
	count(input.tenant.allowedRegistries) > 0
	some c in lib.containers
	not allowed(c.image)
	violation := {
		"id": "HM-REG-001",
		"msg": sprintf("container %s uses image %s outside the allowed registries", [c.name, c.image]),
		"field": sprintf("spec.containers[%s].image", [c.name]),
	}
}

allowed(image) if {
	some prefix in input.tenant.allowedRegistries
	startswith(image, prefix)
}

# METADATA
# title: Mutable image tag
# description: Images tagged latest (or untagged) change under a running workload.
# custom:
#   id: HM-REG-002
#   severity: low
#   enforcement: warn
#   control: SUP-2
warn contains violation if {
	lib.governed
	some c in lib.containers
	mutable_tag(c.image)
	violation := {
		"id": "HM-REG-002",
		"msg": sprintf("container %s uses mutable image %s", [c.name, c.image]),
		"field": sprintf("spec.containers[%s].image", [c.name]),
	}
}

mutable_tag(image) if endswith(image, ":latest")

mutable_tag(image) if {
	not contains(image, "@")
	parts := split(image, "/")
	not contains(parts[count(parts) - 1], ":")
}
