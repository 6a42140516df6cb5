# Shared helpers of the fixture bundle.
package harbormaster.lib

pod := input.request.object if input.request.kind.kind == "Pod"

# governed is true for pods of a tenant namespace that is not exempt.
governed if {
	not input.exempt_namespace
	input.tenant != null
	pod
}

containers contains c if some c in pod.spec.containers

containers contains c if some c in pod.spec.initContainers

gpu_count(c) := to_number(object.get(c, ["resources", "limits", "nvidia.com/gpu"], 0))

pod_gpus := sum([gpu_count(c) | some c in containers])

# privileged users and groups of the configuration may pin nodes.
privileged if input.request.userInfo.username in input.config.privileged.users

privileged if {
	some g in input.request.userInfo.groups
	g in input.config.privileged.groups
}
