package gpu

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	v1 "k8s.io/api/core/v1"
	resourcehelper "k8s.io/component-helpers/resource"
)

// Names of the resource, labels and annotations of the resource model.
const (
	// ResourceName is the extended resource of whole GPUs that NVIDIA's
	// device plugin advertises.
	ResourceName v1.ResourceName = "nvidia.com/gpu"
	// ModelLabel carries a node's GPU model (NVIDIA GPU feature discovery).
	ModelLabel = "nvidia.com/gpu.product"
	// MilliAnnotation asks for a share of one card, in thousandths.
	MilliAnnotation = "harbormaster.io/gpu-milli"
	// ModelsAnnotation lists acceptable models, comma-separated.
	ModelsAnnotation = "harbormaster.io/gpu-models"
	// CardsAnnotation records the cards a placed pod holds.
	CardsAnnotation = "harbormaster.io/gpu-cards"
	// MilliPerCard is one whole card.
	MilliPerCard int64 = 1000
)

// Demand is what a pod asks of a node: GPUs, and the CPU and memory that
// decide whether a node can take the pod at all.
type Demand struct {
	// Whole is the number of whole cards (nvidia.com/gpu).
	Whole int
	// Milli is the share of one card, 1-999, for a shared pod; 0 otherwise.
	Milli int64
	// MilliCPU and Memory (bytes) are the pod's requests.
	MilliCPU int64
	Memory   int64
	// Models are the acceptable GPU models, sorted; nil accepts any.
	Models []string
}

// IsGPU reports whether the pod needs any GPU.
func (d Demand) IsGPU() bool { return d.Whole > 0 || d.Milli > 0 }

// IsShared reports whether the pod asks for a share of one card.
func (d Demand) IsShared() bool { return d.Milli > 0 }

// GPUMilli is the total GPU demand in thousandths of a card.
func (d Demand) GPUMilli() int64 { return int64(d.Whole)*MilliPerCard + d.Milli }

// PerCard is what the pod needs free on each card it uses: the share for a
// shared pod, a whole card otherwise.
func (d Demand) PerCard() int64 {
	if d.Milli > 0 {
		return d.Milli
	}
	return MilliPerCard
}

// AcceptsModel reports whether a node of model may run the pod. A node
// without a model label is accepted only by pods without a restriction.
func (d Demand) AcceptsModel(model string) bool { return acceptsModel(d.Models, model) }

func acceptsModel(models []string, model string) bool {
	if models == nil {
		return true
	}
	for _, m := range models {
		if strings.EqualFold(m, model) {
			return true
		}
	}
	return false
}

// DemandOf reads a pod's demand. It fails on a malformed or contradictory
// request: a share outside 1-999, a share together with whole GPUs, or a
// model list that names nothing.
func DemandOf(pod *v1.Pod) (Demand, error) {
	reqs := resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{})
	d := Demand{MilliCPU: reqs.Cpu().MilliValue(), Memory: reqs.Memory().Value()}
	if q, ok := reqs[ResourceName]; ok {
		d.Whole = int(q.Value())
	}
	if raw, ok := pod.Annotations[MilliAnnotation]; ok {
		milli, err := strconv.ParseInt(strings.TrimSpace(raw), 10, 64)
		if err != nil || milli < 1 || milli >= MilliPerCard {
			return Demand{}, fmt.Errorf("annotation %s=%q: want an integer share of one card in [1, 999] (request %s for whole cards)", MilliAnnotation, raw, ResourceName)
		}
		if d.Whole > 0 {
			return Demand{}, fmt.Errorf("annotation %s and resource %s are exclusive: a pod uses a share of one card or whole cards", MilliAnnotation, ResourceName)
		}
		d.Milli = milli
	}
	models, err := modelsOf(pod)
	if err != nil {
		return Demand{}, err
	}
	d.Models = models
	return d, nil
}

// modelsOf intersects the model restrictions of the annotation, the
// nodeSelector and required node affinity. Affinity terms are ORed, so the
// terms' In-lists are united, and a term without one lifts the
// restriction; the result is never stricter than the NodeAffinity plugin.
func modelsOf(pod *v1.Pod) ([]string, error) {
	var sets [][]string
	if raw, ok := pod.Annotations[ModelsAnnotation]; ok {
		var list []string
		for _, m := range strings.Split(raw, ",") {
			if m = strings.TrimSpace(m); m != "" {
				list = append(list, m)
			}
		}
		if len(list) == 0 {
			return nil, fmt.Errorf("annotation %s=%q names no model", ModelsAnnotation, raw)
		}
		sets = append(sets, list)
	}
	if m, ok := pod.Spec.NodeSelector[ModelLabel]; ok {
		sets = append(sets, []string{m})
	}
	if a := pod.Spec.Affinity; a != nil && a.NodeAffinity != nil && a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution != nil {
		var union []string
		restricted := true
		for _, term := range a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
			var in []string
			found := false
			for _, e := range term.MatchExpressions {
				if e.Key == ModelLabel && e.Operator == v1.NodeSelectorOpIn {
					in, found = e.Values, true
				}
			}
			if !found {
				restricted = false
				break
			}
			union = append(union, in...)
		}
		if restricted && len(a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms) > 0 {
			sets = append(sets, union)
		}
	}
	if len(sets) == 0 {
		return nil, nil
	}
	out := []string{}
	for _, m := range sets[0] {
		keep := true
		for _, other := range sets[1:] {
			keep = keep && acceptsModel(other, m)
		}
		if keep && !slices.ContainsFunc(out, func(o string) bool { return strings.EqualFold(o, m) }) {
			out = append(out, m)
		}
	}
	slices.Sort(out)
	return out, nil
}
