# Shared test fixtures. The _test.rego suffix keeps this package out of the
# policies the engine loads; only `opa test` reads it.
package harbormaster.fixtures

config := {
	"hostGroups": {
		"general": {"nodeSelector": {"matchLabels": {"harbormaster.io/host-group": "general"}}},
		"batch": {"nodeSelector": {"matchLabels": {"harbormaster.io/host-group": "batch"}}},
		"gpu": {"nodeSelector": {
			"matchLabels": {"harbormaster.io/host-group": "gpu", "topology.kubernetes.io/zone": "eu-1a"},
			"matchExpressions": [{"key": "nvidia.com/gpu.present", "operator": "In", "values": ["true"]}],
		}},
		"secure": {"nodeSelector": {"matchLabels": {"node.example.com/pool": "secure"}}},
	},
	"tenants": {
		"team-a": tenant_a_config,
		"team-b": {"hostGroups": ["gpu", "secure"], "defaultHostGroup": "gpu"},
	},
	"dedicatedPools": {
		"spark-a": {"tenant": "team-a", "app": "spark", "placement": "required"},
		"team-a-db": {"tenant": "team-a", "placement": "preferred"},
		"gpu-b": {"tenant": "team-b", "placement": "required"},
	},
	"dedicatedAppLabel": "app.kubernetes.io/name",
	"exemptNamespaces": ["monitoring"],
	"privileged": {"users": ["alice@example.com"], "groups": ["platform-admins"]},
	"overcommit": {"minCPURequest": "10m", "minMemoryRequest": "16Mi"},
	"policy": {"enforcement": {}},
}

# config_index: what the engine derives from config (see the README); inputs
# built here leave it out, so the policies' fallback scans are tested, and
# indexed(inp) adds it.
config_index := {
	"pools_by_tenant": {"team-a": ["spark-a", "team-a-db"], "team-b": ["gpu-b"]},
	"host_groups_by_label": {
		"harbormaster.io/host-group": {"general": ["general"], "batch": ["batch"], "gpu": ["gpu"]},
		"topology.kubernetes.io/zone": {"eu-1a": ["gpu"]},
		"nvidia.com/gpu.present": {"true": ["gpu"]},
		"node.example.com/pool": {"secure": ["secure"]},
	},
	"host_group_requirements": {
		"general": [{"key": "harbormaster.io/host-group", "operator": "In", "values": ["general"]}],
		"batch": [{"key": "harbormaster.io/host-group", "operator": "In", "values": ["batch"]}],
		"gpu": [
			{"key": "harbormaster.io/host-group", "operator": "In", "values": ["gpu"]},
			{"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["eu-1a"]},
			{"key": "nvidia.com/gpu.present", "operator": "In", "values": ["true"]},
		],
		"secure": [{"key": "node.example.com/pool", "operator": "In", "values": ["secure"]}],
	},
}

indexed(inp) := object.union(inp, {"config_index": config_index})

tenant_a_config := {
	"hostGroups": ["general", "batch"],
	"defaultHostGroup": "general",
	"maxGPUsPerPod": 2,
	"allowedGPUModels": ["NVIDIA-A100-SXM4-80GB"],
	"allowedRegistries": ["registry.example.com/team-a/", "docker.io/library/"],
}

tenant_a := object.union(tenant_a_config, {"name": "team-a", "known": true})

# What the mutating webhook leaves on a team-a web pod: confined to its
# default group, fenced off foreign pools, tolerating its own pool.
web_pod := {
	"apiVersion": "v1",
	"kind": "Pod",
	"metadata": {
		"name": "web-7d9f8c6b5-x2lqp",
		"namespace": "team-a-web",
		"labels": {"app.kubernetes.io/name": "web", "pod-template-hash": "7d9f8c6b5"},
	},
	"spec": {
		"containers": [{
			"name": "web",
			"image": "registry.example.com/team-a/web:1.4.2",
			"resources": {
				"limits": {"cpu": "500m", "memory": "256Mi"},
				"requests": {"cpu": "250m", "memory": "128Mi"},
			},
		}],
		"initContainers": [{
			"name": "migrate",
			"image": "registry.example.com/team-a/migrate@sha256:4f2a0c4d6e8b1a3c5e7f9a1b3c5d7e9f1a3b5c7d9e1f3a5b7c9d1e3f5a7b9c1d",
			"resources": {"limits": {"cpu": "200m", "memory": "64Mi"}},
		}],
		"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [
			{"key": "harbormaster.io/host-group", "operator": "In", "values": ["general"]},
			{"key": "harbormaster.io/dedicated", "operator": "NotIn", "values": ["gpu-b", "spark-a"]},
		]}]}}},
		"tolerations": [
			{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
			{"key": "harbormaster.io/dedicated", "operator": "Equal", "value": "team-a-db", "effect": "NoSchedule"},
		],
	},
}

# A team-a spark pod, mutated for its required pool spark-a.
spark_pod := {
	"apiVersion": "v1",
	"kind": "Pod",
	"metadata": {"name": "spark-exec-1", "namespace": "team-a-web", "labels": {"app.kubernetes.io/name": "spark"}},
	"spec": {
		"containers": [{
			"name": "executor",
			"image": "registry.example.com/team-a/spark:3.5",
			"resources": {"limits": {"cpu": "4", "memory": "8Gi"}},
		}],
		"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [
			{"key": "harbormaster.io/dedicated", "operator": "In", "values": ["spark-a"]},
			{"key": "harbormaster.io/dedicated", "operator": "NotIn", "values": ["gpu-b"]},
		]}]}}},
		"tolerations": [
			{"key": "harbormaster.io/dedicated", "operator": "Equal", "value": "spark-a", "effect": "NoSchedule"},
			{"key": "harbormaster.io/dedicated", "operator": "Equal", "value": "team-a-db", "effect": "NoSchedule"},
		],
	},
}

# The unmutated template of the web Deployment.
web_template := {
	"metadata": {"labels": {"app.kubernetes.io/name": "web"}},
	"spec": {"containers": [{
		"name": "web",
		"image": "registry.example.com/team-a/web:1.4.2",
		"resources": {"limits": {"cpu": "500m", "memory": "256Mi"}},
	}]},
}

pod_kind := {"group": "", "version": "v1", "kind": "Pod"}

user := {"username": "dev@example.com", "groups": ["team-a-devs", "system:authenticated"]}

admin := {"username": "bob@example.com", "groups": ["platform-admins", "system:authenticated"]}

replicaset_controller := {
	"username": "system:serviceaccount:kube-system:replicaset-controller",
	"groups": ["system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"],
}

request(kind, obj) := {
	"uid": "5f0d3c1e-8a2b-4c6d-9e0f-1a2b3c4d5e6f",
	"kind": kind,
	"resource": {"group": kind.group, "version": kind.version, "resource": sprintf("%ss", [lower(kind.kind)])},
	"subResource": "",
	"operation": "CREATE",
	"userInfo": user,
	"namespace": "team-a-web",
	"name": object.get(obj, ["metadata", "name"], ""),
	"object": obj,
	"dryRun": false,
}

# input_for: a team-a CREATE of obj by an ordinary tenant developer.
input_for(kind, obj) := {
	"request": request(kind, obj),
	"namespace": {"name": "team-a-web", "labels": {"harbormaster.io/tenant": "team-a", "kubernetes.io/metadata.name": "team-a-web"}},
	"tenant": tenant_a,
	"exempt_namespace": false,
	"config": config,
}

pod_input(pod) := input_for(pod_kind, pod)

# pod_update: an UPDATE from old to new, made by the tenant developer.
pod_update(old, new) := object.union(pod_input(new), {"request": {"operation": "UPDATE", "oldObject": old}})

# patched_pod: web_pod with JSON patch operations applied.
patched_pod(ops) := json.patch(web_pod, ops)

patched_pod_input(ops) := pod_input(patched_pod(ops))

deployment_kind := {"group": "apps", "version": "v1", "kind": "Deployment"}

deployment(template) := {
	"apiVersion": "apps/v1",
	"kind": "Deployment",
	"metadata": {"name": "web", "namespace": "team-a-web"},
	"spec": {
		"replicas": 3,
		"selector": {"matchLabels": {"app.kubernetes.io/name": "web"}},
		"template": template,
	},
}

deployment_input(template) := input_for(deployment_kind, deployment(template))

cronjob_kind := {"group": "batch", "version": "v1", "kind": "CronJob"}

cronjob(template) := {
	"apiVersion": "batch/v1",
	"kind": "CronJob",
	"metadata": {"name": "report", "namespace": "team-a-web"},
	"spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": template}}},
}

cronjob_input(template) := input_for(cronjob_kind, cronjob(template))

# as_user: the same request made by someone else.
as_user(inp, user_info) := object.union(inp, {"request": {"userInfo": user_info}})

ids(violations) := {v.id | some v in violations}

fields(violations) := {v.field | some v in violations}
