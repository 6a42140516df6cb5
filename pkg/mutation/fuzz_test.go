package mutation

import (
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/harbormaster-dev/harbormaster/pkg/config"
)

const gpu = corev1.ResourceName("nvidia.com/gpu")

// fuzzTenants are picked by a fuzzed byte; "" is no tenant, team-z is
// unknown to the configuration.
func fuzzTenants() []string {
	return []string{"", "team-a", "team-multi", "team-none", "team-b", "team-z"}
}

// FuzzMutatePod checks the invariants of MutatePod on pods built from fuzz
// input: no panic, idempotence, requests never raised above what the pod
// arrived with (or what its annotation claims) nor above limits, GPUs
// untouched, and a tenant pod confined in every required term.
func FuzzMutatePod(f *testing.F) {
	// cpuLimit, cpuRequest (millicores), memLimit, memRequest (KiB), gpus,
	// requestMode, tenant, hostGroupLabel, app, identity, termMode, termKey,
	// termValue, shape, lrMinCPU (millicores), annotation
	f.Add(uint32(1000), uint32(0), uint32(1<<20), uint32(0), uint8(1), uint8(1), uint8(1), "", "web", "web", uint8(0), "", "", uint8(0), uint32(0), "")
	f.Add(uint32(1500), uint32(100), uint32(2048), uint32(4096), uint8(0), uint8(2), uint8(2), "batch", "spark", "", uint8(2), "zone", "a", uint8(3), uint32(300), "")
	f.Add(uint32(7), uint32(7), uint32(1), uint32(1), uint8(4), uint8(0), uint8(4), "general", "", "x", uint8(3), "", "", uint8(1), uint32(0), "")
	f.Add(uint32(2000), uint32(2000), uint32(0), uint32(0), uint8(0), uint8(1), uint8(0), "restricted", "cache", "", uint8(4), "k", "v", uint8(2), uint32(5000), `{"ratios":{"cpu":2},"originals":{"containers/app":{"cpu":"4"}}}`)
	f.Add(uint32(999), uint32(1), uint32(3), uint32(5), uint8(0), uint8(2), uint8(3), "batch", "spark", "y", uint8(5), "harbormaster.io/host-group", "general", uint8(7), uint32(1), "{bad")

	cfg := parseConfig(f, `overcommit:
  default: {cpu: 3.5, memory: 1.5}
  hostGroups: {batch: {cpu: 8}}
  namespaces: {apps: {memory: 2}}
antiAffinity:
  workloadClasses: {hot: {weight: 70}}
`, hostGroupsYAML, poolsYAML)

	f.Fuzz(func(t *testing.T, cpuLimit, cpuRequest, memLimit, memRequest uint32, gpus, requestMode, tenantPick uint8,
		hostGroupLabel, app, identity string, termMode uint8, termKey, termValue string, shape uint8, lrMinCPU uint32, annotation string) {
		resources := func(swap bool) corev1.ResourceRequirements {
			cl, cr, ml, mr := cpuLimit, cpuRequest, memLimit, memRequest
			if swap {
				cl, cr, ml, mr = cr, cl, mr, ml
			}
			r := corev1.ResourceRequirements{Limits: corev1.ResourceList{}, Requests: corev1.ResourceList{}}
			if cl > 0 {
				r.Limits[corev1.ResourceCPU] = *resource.NewMilliQuantity(int64(cl), resource.DecimalSI)
			}
			if ml > 0 {
				r.Limits[corev1.ResourceMemory] = *resource.NewQuantity(int64(ml)*1024, resource.BinarySI)
			}
			switch requestMode % 3 {
			case 1: // as the API server defaults them
				for k, v := range r.Limits {
					r.Requests[k] = v
				}
			case 2:
				if cr > 0 {
					r.Requests[corev1.ResourceCPU] = *resource.NewMilliQuantity(int64(cr), resource.DecimalSI)
				}
				if mr > 0 {
					r.Requests[corev1.ResourceMemory] = *resource.NewQuantity(int64(mr)*1024, resource.BinarySI)
				}
			}
			if gpus > 0 {
				r.Limits[gpu] = *resource.NewQuantity(int64(gpus), resource.DecimalSI)
				r.Requests[gpu] = *resource.NewQuantity(int64(gpus), resource.DecimalSI)
			}
			return r
		}

		pod := newPod(withLabels("app.kubernetes.io/name", app, "app", identity, config.LabelWorkloadClass, "hot"))
		if hostGroupLabel != "" {
			pod.Labels[config.LabelHostGroup] = hostGroupLabel
		}
		pod.Spec.Containers[0].Resources = resources(false)
		if shape&1 != 0 {
			pod.Spec.Containers = append(pod.Spec.Containers, container("second", nil, nil))
			pod.Spec.Containers[1].Resources = resources(true)
		}
		if shape&2 != 0 {
			always := corev1.ContainerRestartPolicyAlways
			pod.Spec.InitContainers = []corev1.Container{container("init", nil, nil), container("sidecar", nil, nil)}
			pod.Spec.InitContainers[0].Resources = resources(true)
			pod.Spec.InitContainers[1].Resources = resources(false)
			pod.Spec.InitContainers[1].RestartPolicy = &always
		}
		if shape&4 != 0 {
			r := resources(false)
			pod.Spec.Resources = &r
		}
		if annotation != "" {
			pod.Annotations = map[string]string{config.AnnotationOvercommit: annotation}
		}
		userTerm := term(req(termKey, corev1.NodeSelectorOpIn, termValue))
		switch termMode % 6 {
		case 1:
			pod = withTerms(pod, userTerm)
		case 2:
			pod = withTerms(pod, userTerm, term(req(termValue, corev1.NodeSelectorOpExists)))
		case 3:
			pod = withTerms(pod, corev1.NodeSelectorTerm{MatchFields: []corev1.NodeSelectorRequirement{req(metav1.ObjectNameField, corev1.NodeSelectorOpIn, termValue)}})
		case 4:
			pod = withTerms(pod, term(), userTerm)
		case 5:
			pod = withTerms(pod, term(generalReq()), userTerm)
		}

		tenant := fuzzTenants()[int(tenantPick)%len(fuzzTenants())]
		in := tenantInput("apps", tenant)
		if lrMinCPU > 0 {
			in.LimitRanges = []corev1.LimitRange{limitRange(corev1.LimitTypeContainer,
				corev1.ResourceList{corev1.ResourceCPU: *resource.NewMilliQuantity(int64(lrMinCPU), resource.DecimalSI)}, nil)}
		}

		input := pod.DeepCopy()
		first := MutatePod(cfg, pod, in)
		require.Equal(t, input, pod, "the input pod must not be modified")
		second := MutatePod(cfg, first.Pod, in)
		require.Equal(t, first.Pod, second.Pod, "MutatePod must be idempotent")
		require.Empty(t, second.Applied)
		require.True(t, WritesOnlyMutableFields(input, first.Pod), "the rules write only the fields the webhook's patch covers")

		owned := input.DeepCopy()
		snapshot := WritableFieldsOf(owned)
		ownedResult := MutatePodOwned(cfg, owned, in)
		require.Same(t, owned, ownedResult.Pod)
		require.Equal(t, first, ownedResult, "MutatePodOwned agrees with MutatePod")
		require.Equal(t, WritableFieldsOf(input), snapshot, "a snapshot of the writable fields taken before MutatePodOwned keeps the original values")

		checkRequests(t, input, first.Pod)
		checkConfinement(t, cfg, tenant, first.Pod)
	})
}

func withTerms(p *corev1.Pod, terms ...corev1.NodeSelectorTerm) *corev1.Pod {
	withRequiredTerms(terms...)(p)
	return p
}

func checkRequests(t *testing.T, input, output *corev1.Pod) {
	t.Helper()
	var record OvercommitRecord
	if v, ok := input.Annotations[config.AnnotationOvercommit]; ok {
		record, _ = ParseOvercommitRecord(v)
	}
	outSlots := map[string]resourceSlot{}
	for _, s := range resourceSlots(&output.Spec) {
		outSlots[s.key] = s
	}
	for _, in := range resourceSlots(&input.Spec) {
		out := outSlots[in.key]
		require.Equal(t, in.res.Limits, out.res.Limits, "%s: limits are never changed", in.key)
		require.Equal(t, in.res.Requests[gpu], out.res.Requests[gpu], "%s: GPUs are never touched", in.key)
		for _, res := range overcommitted() {
			limit, hasLimit := in.res.Limits[res]
			if !hasLimit {
				require.Equal(t, in.res.Requests[res], out.res.Requests[res], "%s/%s: no limit, no change", in.key, res)
				continue
			}
			ceiling, ok := in.res.Requests[res]
			if !ok {
				ceiling = limit
			}
			if recorded, ok := record.original(in.key, res); ok && recorded.Cmp(ceiling) > 0 {
				ceiling = recorded
			}
			got, ok := out.res.Requests[res]
			if !ok {
				got = limit
			}
			require.LessOrEqual(t, got.Cmp(ceiling), 0, "%s/%s: request %s above original %s", in.key, res, got.String(), ceiling.String())
			require.LessOrEqual(t, got.Cmp(limit), 0, "%s/%s: request %s above limit %s", in.key, res, got.String(), limit.String())
		}
	}
}

// checkConfinement asserts that every required term that can match a node
// lies inside one of the tenant's host groups or its required pools, and
// fences off pools the pod does not own.
func checkConfinement(t *testing.T, cfg *config.Config, tenantName string, pod *corev1.Pod) {
	t.Helper()
	tenant, isTenant := cfg.Tenants[tenantName]
	owner := tenantName
	if !isTenant {
		owner = ""
	}
	owned := cfg.OwnedPools(owner, pod.Labels)
	var required, notOwned []string
	for _, p := range owned {
		if cfg.DedicatedPools[p].Placement == config.PlacementRequired {
			required = append(required, p)
		}
	}
	for _, p := range sortedPoolNames(cfg) {
		if !contains(owned, p) {
			notOwned = append(notOwned, p)
		}
	}
	var areas [][]corev1.NodeSelectorRequirement
	switch {
	case len(required) > 0:
		areas = [][]corev1.NodeSelectorRequirement{{req(config.LabelDedicated, corev1.NodeSelectorOpIn, required...)}}
	case isTenant:
		for _, g := range tenant.HostGroups {
			areas = append(areas, cfg.HostGroups[g].NodeSelector.Requirements())
		}
	}
	terms := requiredTermsOf(pod)
	if len(areas) > 0 || len(notOwned) > 0 {
		require.NotEmpty(t, terms, "a confined pod has required terms")
	}
	for i, tm := range terms {
		if isEmptyTerm(tm) {
			continue
		}
		if len(areas) > 0 {
			require.True(t, containsAnyGroup(tm, areas), "term %d escapes confinement: %v", i, tm)
		}
		if len(notOwned) > 0 {
			require.True(t, hasRequirement(tm.MatchExpressions, req(config.LabelDedicated, corev1.NodeSelectorOpNotIn, notOwned...)),
				"term %d does not fence off pools %v: %v", i, notOwned, tm)
		}
	}
	for _, tol := range pod.Spec.Tolerations {
		if tol.Key == config.LabelDedicated {
			require.Contains(t, owned, tol.Value, "a dedicated toleration was added to a non-owner")
		}
	}
}
