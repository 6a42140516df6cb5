# METADATA
# title: Harbormaster policy helpers
# description: >-
#   Shared helpers of the governance policies: where the pod spec of the
#   reviewed object lives, its containers, image normalization, tenancy,
#   dedicated pool ownership, opt-out authorization and what an UPDATE
#   changes. Defines no deny or warn rule.
package harbormaster.lib

# Well-known labels, annotations and taint keys (see pkg/config).
tenant_label := "harbormaster.io/tenant"

host_group_label := "harbormaster.io/host-group"

dedicated_key := "harbormaster.io/dedicated"

exempt_label := "harbormaster.io/exempt"

qos_label := "harbormaster.io/qos"

default_dedicated_app_label := "app.kubernetes.io/name"

# The dedicated taint's effect; a toleration with another effect cannot
# tolerate it.
dedicated_taint_effect := "NoSchedule"

# ---------------------------------------------------------------------------
# What is under review.

# Reviewed kinds: their API group and the path of the pod template inside
# the object. A Pod is its own template (empty path).
reviewed_kinds := {
	"Pod": {"group": "", "template": []},
	"Deployment": {"group": "apps", "template": ["spec", "template"]},
	"ReplicaSet": {"group": "apps", "template": ["spec", "template"]},
	"StatefulSet": {"group": "apps", "template": ["spec", "template"]},
	"DaemonSet": {"group": "apps", "template": ["spec", "template"]},
	"Job": {"group": "batch", "template": ["spec", "template"]},
	"CronJob": {"group": "batch", "template": ["spec", "jobTemplate", "spec", "template"]},
}

# Pod subresources that carry a pod spec a tenant can change (in-place
# resize, debug containers); status, binding and the like are not reviewed.
pod_subresources := {"", "resize", "ephemeralcontainers"}

request_kind := object.get(input, ["request", "kind", "kind"], "")

request_group := object.get(input, ["request", "kind", "group"], "")

sub_resource := object.get(input, ["request", "subResource"], "")

operation := object.get(input, ["request", "operation"], "")

# The group is checked too: a custom resource may reuse a built-in kind name.
# The engine derives it (input.facts, see below) as it derives the rest of
# the request's scope: reviewable, tenant_review, allowed_host_groups and
# owned_pools, which every rule reads first.
kind_info := k if {
	k := facts.kind_info
} else := reviewed_kinds[request_kind] if reviewed_kinds[request_kind].group == request_group

is_pod if {
	kind_info
	request_kind == "Pod"
}

is_workload if {
	kind_info
	request_kind != "Pod"
}

is_create if operation == "CREATE"

is_update if operation == "UPDATE"

exempt_namespace if input.exempt_namespace == true

# reviewable: a CREATE or UPDATE of a reviewed object outside exempt
# namespaces. DELETE and CONNECT never produce violations. False or
# undefined otherwise; rules read it as a condition, for which both fail.
reviewable := r if {
	r := facts.reviewable
} else if {
	operation in {"CREATE", "UPDATE"}
	is_pod
	sub_resource in pod_subresources
	not exempt_namespace
} else if {
	operation in {"CREATE", "UPDATE"}
	is_workload
	sub_resource == ""
	not exempt_namespace
}

# is_tenant_request: the namespace belongs to a tenant (known or not) and is
# not exempt.
is_tenant_request if {
	is_object(input.tenant)
	not exempt_namespace
}

# tenant_review: what every tenant rule requires (false or undefined
# otherwise, as reviewable).
tenant_review := r if {
	r := facts.tenant_review
} else if {
	reviewable
	is_tenant_request
}

# ---------------------------------------------------------------------------
# Type guards: the engine passes Kubernetes JSON, where absent lists and maps
# may also be null.

as_object(x) := x if is_object(x)

else := {}

as_array(x) := x if is_array(x)

else := []

# ---------------------------------------------------------------------------
# Pod template, spec, labels and field paths of any reviewed object.
#
# The reviewed object's helpers (pod_template, pod_spec, ...) are complete
# rules with else branches rather than calls of the *_of functions: every
# request evaluates them, and a function call costs more than the
# expressions it saves. Both give the same values.

pod_template_of(obj) := as_object(obj) if {
	kind_info.template == []
} else := as_object(object.get(as_object(obj), kind_info.template, {}))

pod_spec_of(obj) := as_object(object.get(pod_template_of(obj), "spec", {}))

pod_labels_of(obj) := as_object(object.get(pod_template_of(obj), ["metadata", "labels"], {}))

pod_annotations_of(obj) := as_object(object.get(pod_template_of(obj), ["metadata", "annotations"], {}))

new_object := o if {
	o := input.request.object
	is_object(o)
} else := {}

# A missing oldObject on UPDATE reads as empty, so everything looks changed
# and is checked (fail closed).
old_object := as_object(object.get(input, ["request", "oldObject"], {}))

# pod_template: pod_template_of(new_object).
pod_template := new_object if {
	kind_info.template == []
} else := t if {
	t := object.get(new_object, kind_info.template, {})
	is_object(t)
} else := {} if kind_info

pod_spec := s if {
	s := pod_template.spec
	is_object(s)
} else := {} if pod_template

pod_labels := l if {
	l := pod_template.metadata.labels
	is_object(l)
} else := {} if pod_template

pod_annotations := a if {
	a := pod_template.metadata.annotations
	is_object(a)
} else := {} if pod_template

old_pod_spec := pod_spec_of(old_object)

old_pod_labels := pod_labels_of(old_object)

# spec_path_prefix: "spec" for a Pod, "spec.template.spec" for most
# workloads, "spec.jobTemplate.spec.template.spec" for a CronJob.
spec_path_prefix := concat(".", array.concat(kind_info.template, ["spec"]))

metadata_path_prefix := concat(".", array.concat(kind_info.template, ["metadata"]))

spec_field(suffix) := sprintf("%s.%s", [spec_path_prefix, suffix])

label_field(key) := sprintf("%s.labels[%s]", [metadata_path_prefix, key])

annotation_field(key) := sprintf("%s.annotations[%s]", [metadata_path_prefix, key])

node_selector := n if {
	n := pod_spec.nodeSelector
	is_object(n)
} else := {} if pod_spec

node_selector_field(key) := spec_field(sprintf("nodeSelector[%s]", [key]))

tolerations := t if {
	t := pod_spec.tolerations
	is_array(t)
} else := [] if pod_spec

toleration_field(index) := spec_field(sprintf("tolerations[%d]", [index]))

required_affinity_path := ["affinity", "nodeAffinity", "requiredDuringSchedulingIgnoredDuringExecution"]

required_affinity_field := spec_field(concat(".", required_affinity_path))

# required_terms: the ORed required node selector terms ([] when none).
required_terms := t if {
	t := pod_spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms
	is_array(t)
} else := [] if pod_spec

term_field(index) := sprintf("%s.nodeSelectorTerms[%d]", [required_affinity_field, index])

term_expressions(term) := e if {
	e := term.matchExpressions
	is_array(e)
} else := []

# A term without expressions and fields matches no node, so it can never
# widen placement.
empty_term(term) if {
	count(term_expressions(term)) == 0
	count(as_array(object.get(as_object(term), "matchFields", []))) == 0
}

# Requirement in a comparable form: values as a set, since their order does
# not change which nodes match.
normalize_requirement(r) := {
	"key": object.get(as_object(r), "key", ""),
	"operator": object.get(as_object(r), "operator", ""),
	"values": requirement_values(r),
}

# requirement_head: [key, operator] as normalize_requirement reads them,
# without building the values set: rules filter on these first, because a
# NotIn fence lists every foreign pool.
requirement_head(r) := [object.get(r, "key", ""), object.get(r, "operator", "")] if {
	is_object(r)
} else := ["", ""]

requirement_values(r) := {v | some v in vs} if {
	vs := r.values
	is_array(vs)
} else := set()

# ---------------------------------------------------------------------------
# Containers.

container_kinds := ["containers", "initContainers", "ephemeralContainers"]

# containers: every container of the pod spec with its kind, index, name and
# field path, e.g. {"kind": "initContainers", "index": 0, "name": "setup",
# "container": {...}, "field": "spec.initContainers[0]"}. The engine derives
# it (input.facts, see below); container_entries computes the same.
containers := c if {
	c := facts.containers
} else := container_entries

container_entries contains entry if {
	some kind in container_kinds
	list := pod_spec[kind]
	is_array(list)
	some index, item in list
	container := as_object(item)
	entry := {
		"kind": kind,
		"index": index,
		"name": object.get(container, "name", ""),
		"container": container,
		# spec_field(sprintf("%s[%d]", ...)) in one call: this runs for
		# every container of every request.
		"field": sprintf("%s.%s[%d]", [spec_path_prefix, kind, index]),
	}
}

# facts: what the engine derives from the request (see policies/README.md):
# the request's scope (kind_info, reviewable, tenant_review,
# allowed_host_groups, owned_pools), the containers, their images
# normalized, and their cpu and memory limits counted and the smallest
# parsed. Taken only when derived from this very request, tenant and
# configuration (a rule may evaluate with another object, as old_gpus_used
# does); inputs without it (tests, hand-written inputs) get the same
# answers computed here. The engine checks when it loads a bundle that
# these helpers review the kinds, subresources and container lists it
# derives the facts for.
facts := f if {
	f := input.facts

	# != compares the terms' identity first, where == would unify the two
	# objects key by key.
	other_request := f.request != input.request
	not other_request
	other_tenant := f.tenant != input.tenant
	not other_tenant
	other_config := f.config != input.config
	not other_config
	f.exempt_namespace == input.exempt_namespace
}

# ---------------------------------------------------------------------------
# Image references, normalized the way container runtimes resolve them:
# "nginx" -> "docker.io/library/nginx:latest",
# "registry.example.com:5000/a/b@sha256:..." keeps its host, port and digest.

normalize_image(image) := concat("", [domain, "/", repo, tag, digest]) if {
	# The digest starts at the first "@" (split, count and substring are
	# cheaper here than helper functions; all three work in characters).
	name := split(image, "@")[0]
	digest := substring(image, count(name), -1)
	[domain, path] := split_domain(name)

	# With the host removed, a colon can only start the tag.
	bare := split(path, ":")[0]
	repo := library_repo(domain, bare)
	tag := default_tag(substring(path, count(bare), -1), digest)
}

# The first path component is a registry host only if it looks like one: a
# dot or a port, "localhost", or upper case (invalid in repository paths).
split_domain(name) := [canonical_registry(first), substring(name, i + 1, -1)] if {
	i := indexof(name, "/")
	i > 0
	first := substring(name, 0, i)
	registry_host(first)
} else := ["docker.io", name]

# An else chain stops at the first match; separate bodies would all run.
registry_host(s) if {
	contains(s, ".")
} else if {
	contains(s, ":")
} else if {
	s == "localhost"
} else if {
	lower(s) != s
}

canonical_registry(host) := "docker.io" if host == "index.docker.io"

else := host

library_repo(domain, repo) := concat("/", ["library", repo]) if {
	domain == "docker.io"
	not contains(repo, "/")
} else := repo

default_tag(tag, digest) := ":latest" if {
	tag == ""
	digest == ""
} else := tag

# normalized_image(image): normalize_image(image), looked up in the facts.
normalized_image(image) := n if {
	n := facts.images[image]
} else := normalize_image(image)

# image_has_prefix: the normalized image starts with prefix at a path, tag
# or digest boundary, so "registry.example.com/team-a" does not admit
# "registry.example.com/team-ab/x".
image_has_prefix(image, prefix) if {
	prefix != ""
	startswith(image, prefix)
	endswith(prefix, "/")
}

image_has_prefix(image, prefix) if {
	prefix != ""
	startswith(image, prefix)
	substring(image, count(prefix), 1) in {"/", ":", "@"}
}

# ---------------------------------------------------------------------------
# Quantities. Kubernetes serializes them as strings ("500m", "16Mi", "1e3").

quantity(q) := units.parse(q) if {
	is_string(q)
} else := q if {
	is_number(q)
}

# ---------------------------------------------------------------------------
# Tenant, configuration, host groups and dedicated pools.

# As elsewhere in the helpers every request evaluates, the type guards are
# written out rather than calls of as_object and as_array.
tenant := t if {
	t := input.tenant
	is_object(t)
} else := {} if {
	_ := input.tenant
}

tenant_name := object.get(tenant, "name", "")

tenant_host_groups := {g | some g in groups} if {
	groups := tenant.hostGroups
	is_array(groups)
} else := set() if tenant

config := c if {
	c := input.config
	is_object(c)
} else := {}

host_groups := g if {
	g := config.hostGroups
	is_object(g)
} else := {}

# Tenant groups the config defines: the mutation confines to these only.
allowed_host_groups := g if {
	g := facts.allowed_host_groups
} else := {g | some g in tenant_host_groups; host_groups[g]}

# host_group_requirements[g]: the group's selector as normalized
# requirements, matchLabels as "In [value]".
host_group_requirements[name] := reqs if {
	some name, group in host_groups
	selector := as_object(object.get(as_object(group), "nodeSelector", {}))
	labels := {normalize_requirement({"key": k, "operator": "In", "values": [v]}) |
		some k, v in as_object(object.get(selector, "matchLabels", {}))
	}
	exprs := {normalize_requirement(r) | some r in as_array(object.get(selector, "matchExpressions", []))}
	reqs := labels | exprs
}

# host_group_pairs: node label key=value pairs a group selects (matchLabels
# and In expressions).
host_group_pairs contains {"group": name, "key": r.key, "value": v} if {
	some name, reqs in host_group_requirements
	some r in reqs
	r.operator == "In"
	some v in r.values
}

# config_index: lookups the engine derives from input.config once per
# configuration (see policies/README.md), so that a request costs the same
# with ten tenants or a thousand. Inputs without it (tests, hand-written
# inputs) get the same answers by scanning input.config.
config_index := input.config_index if is_object(input.config_index)

# group_requirements(group): host_group_requirements[group] as a list, each
# requirement's values sorted.
group_requirements(group) := config_index.host_group_requirements[group] if {
	config_index
} else := [{"key": r.key, "operator": r.operator, "values": sort(r.values)} | some r in reqs] if {
	reqs := host_group_requirements[group]
}

# host_groups_selecting(key, value): {p.group | some p in host_group_pairs;
# p.key == key; p.value == value}.
host_groups_selecting(key, value) := {g | some g in object.get(config_index, ["host_groups_by_label", key, value], [])} if {
	config_index
} else := {p.group | some p in host_group_pairs; p.key == key; p.value == value}

dedicated_pools := p if {
	p := config.dedicatedPools
	is_object(p)
} else := {}

dedicated_app_label := l if {
	l := object.get(config, "dedicatedAppLabel", "")
	l != ""
} else := default_dedicated_app_label

# owned_pools: pools of the pod's tenant whose app (if any) is the pod's.
owned_pools := p if {
	p := facts.owned_pools
} else := {name |
	tenant_name != ""
	some name in tenant_pool_names
	pool_app_matches(as_object(dedicated_pools[name]))
}

# tenant_pool_names: the pools whose tenant is the pod's tenant.
tenant_pool_names := object.get(config_index, ["pools_by_tenant", tenant_name], []) if {
	config_index
} else := [name |
	some name, pool in dedicated_pools
	object.get(as_object(pool), "tenant", "") == tenant_name
]

pool_app_matches(pool) if {
	object.get(pool, "app", "") == ""
} else if {
	app := object.get(pool, "app", "")
	app != ""
	object.get(pod_labels, dedicated_app_label, "") == app
}

# Every pool but the owned ones; rules ask for it only once a toleration or
# requirement could reach a foreign pool.
foreign_pools := object.keys(dedicated_pools) - owned_pools

# ---------------------------------------------------------------------------
# Who may opt pods out (exempt label, guaranteed QoS).

username := object.get(input, ["request", "userInfo", "username"], "")

user_groups := {g | some g in as_array(object.get(input, ["request", "userInfo", "groups"], []))}

privileged := as_object(object.get(config, "privileged", {}))

privileged_user if username in as_array(object.get(privileged, "users", []))

privileged_user if {
	some g in as_array(object.get(privileged, "groups", []))
	g in user_groups
}

kube_system_service_account if startswith(username, "system:serviceaccount:kube-system:")

# Built-in controllers (ReplicaSet, StatefulSet, DaemonSet, Job) create Pods
# from a template whose author was checked when the workload was written, so
# their Pods carry that decision. The Deployment and CronJob controllers
# likewise create ReplicaSets and Jobs from checked templates; those carry a
# controller ownerReference. Nothing else from kube-system is trusted.
trusted_controller if {
	is_pod
	kube_system_service_account
}

trusted_controller if {
	request_kind in {"ReplicaSet", "Job"}
	is_workload
	kube_system_service_account
	some ref in as_array(object.get(new_object, ["metadata", "ownerReferences"], []))
	ref.controller == true
}

opt_out_authorized if privileged_user

opt_out_authorized if trusted_controller

# exempt_authorized: the pod is labelled exempt by someone allowed to, so the
# mutation rightly left it alone.
exempt_authorized if {
	pod_labels[exempt_label] == "true"
	opt_out_authorized
}

# ---------------------------------------------------------------------------
# What a request changes. On UPDATE a rule reports only what the request
# changes: re-denying a pre-existing state (created before a config change,
# or bound by the scheduler) would block unrelated updates such as a
# controller removing a finalizer.

# These are else chains: they run for every container, toleration and
# selector of a request, and a chain stops at the first body that holds.
spec_changed(path) if {
	is_create
} else if {
	is_update
	object.get(pod_spec, path, null) != object.get(old_pod_spec, path, null)
}

label_changed(key) if {
	is_create
} else if {
	is_update
	object.get(pod_labels, key, null) != object.get(old_pod_labels, key, null)
}

# new_toleration: a toleration the old object did not have.
new_toleration(t) if {
	is_create
} else if {
	is_update
	not t in as_array(object.get(old_pod_spec, "tolerations", []))
}

# container_changed: the container is new, or the value at path differs
# from the old container of the same kind and name.
container_changed(entry, path) if {
	is_create
} else if {
	is_update
	not old_container_exists(entry)
} else if {
	is_update
	some old in as_array(object.get(old_pod_spec, entry.kind, []))
	object.get(as_object(old), "name", "") == entry.name
	object.get(as_object(old), path, null) != object.get(entry.container, path, null)
}

old_container_exists(entry) if {
	some old in as_array(object.get(old_pod_spec, entry.kind, []))
	object.get(as_object(old), "name", "") == entry.name
}

# new_pod_template: a CREATE, or an UPDATE of a workload that changes its
# pod template (a rollout of new pods). Scaling, status and finalizer
# updates leave the template alone. Pod UPDATEs are never new templates.
new_pod_template if is_create

new_pod_template if {
	is_update
	is_workload
	pod_template_of(new_object) != pod_template_of(old_object)
}

# ---------------------------------------------------------------------------
# prefetch: the helpers nearly every request reads, for the engine to
# evaluate before the deny and warn sets. OPA evaluates in
# continuation-passing style: a helper first computed inside a rule stays on
# the Go stack, under everything evaluated after it. Computed here, a few per
# body and dependencies first, they return before any rule runs, and an
# evaluation needs a quarter of the stack (a new goroutine per request grows
# its stack from a few kilobytes). Each body is guarded like the rules that
# read its helpers, so that a request computes nothing its rules would not.
# The request's scope comes from input.facts (when the engine derived them),
# cheap enough for one body.
prefetch contains "scope" if {
	kind_info
	tenant_review
	allowed_host_groups
	owned_pools
}

prefetch contains "pod" if {
	reviewable
	pod_spec
	pod_labels
	containers
}

prefetch contains "placement" if {
	tenant_review
	tolerations
	node_selector
	required_terms
}
