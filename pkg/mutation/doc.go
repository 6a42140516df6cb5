// Package mutation holds Harbormaster's mutating admission rules as pure
// functions of (object, configuration, snapshot): no I/O, no clients, and
// the input object is never modified.
//
// Exemption. Pods in kube-system, kube-public, kube-node-lease, the
// webhook's own namespace or a configured exempt namespace, and pods
// labelled harbormaster.io/exempt=true, are returned unchanged.
//
// Overcommit lowers cpu and memory requests of every container, init
// container (sidecars included) and pod-level resources that have a limit,
// unless the pod is labelled harbormaster.io/qos=guaranteed. The ratio comes
// from config.Ratios: per resource, the namespace's ratio wins over the
// ratio of the host group the pod is pinned to, which wins over the
// default. The target is ceil(limit/ratio), cpu rounded up to whole
// millicores and memory up to whole bytes, then raised to the configured
// floor, to every LimitRange min and to ceil(limit/maxLimitRequestRatio),
// and capped at the limit. Requests are only ever lowered: the new request
// is min(original, target), where the original is the request the pod
// arrived with (the API server defaults a missing request to the limit).
// Ratios are read as the decimals written in the config (1.1 is 11/10), so
// rounding never adds a spurious millicore. Container-type LimitRange items
// apply to containers and Pod-type items to pod-level resources; Pod-type
// constraints on the sum of container requests are not considered.
// Extended resources are never touched. The annotation
// harbormaster.io/overcommit records the ratios and the original requests
// that changed; on reinvocation the recorded originals are used, so ratios
// never compound and mutating a mutated pod changes nothing. In-place
// resizes keep the recorded ratios (MutatePodResize).
//
// Anti-affinity adds a soft pod anti-affinity term over the pod's identity
// (the first configured identity label set fully present on it) unless the
// pod declares its own pod anti-affinity or a topology spread constraint on
// the same topology key that selects itself. Pods of a configured workload
// class also get a term repelling their class.
//
// Host groups. A pod in a tenant's namespace is confined to one host group
// (its harbormaster.io/host-group label if the tenant may use it, else the
// tenant's default) or to all of the tenant's groups. The groups'
// requirements are ANDed into every required node selector term, crossing
// terms with groups, since terms are ORed and an appended term would be an
// escape. A tenant with zero host groups is not confined at all. Empty
// terms, which match no node, are left alone.
//
// Dedicated pools. A pod owns a pool when its tenant is the pool's and the
// pool's app (if any) matches the pod's app label; owners get a toleration
// for the pool's taint. For a pool with placement "required" the pool
// requirement replaces host-group confinement: dedicated nodes are the
// owner's exclusive area and need not belong to any of its host groups. For
// "preferred" the pod only prefers the pool (weight 100) and stays confined
// to its host groups, so such pools' nodes should also be in one of the
// tenant's groups or the preference can never be met. Every non-exempt pod,
// tenant or not, gets "harbormaster.io/dedicated NotIn <pools it does not
// own>" in every required term, so a toleration it declares itself can
// never take it onto another owner's pool. Non-owners never get a
// dedicated toleration.
package mutation
