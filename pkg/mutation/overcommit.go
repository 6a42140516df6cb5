package mutation

import (
	"encoding/json"
	"maps"
	"math"
	"math/big"
	"math/bits"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/harbormaster-dev/harbormaster/internal/jsonenc"
	"github.com/harbormaster-dev/harbormaster/pkg/config"
)

// OvercommitRecord is the JSON value of the harbormaster.io/overcommit
// annotation: the ratios applied and, for every request that was lowered,
// the request the pod arrived with. Keys are "containers/<name>",
// "initContainers/<name>" and "pod"; encoding/json sorts map keys, so the
// annotation is deterministic.
type OvercommitRecord struct {
	Ratios    RecordedRatios                            `json:"ratios"`
	Originals map[string]map[corev1.ResourceName]string `json:"originals,omitempty"`
}

// recordedOriginal is one entry of OvercommitRecord.Originals.
type recordedOriginal struct {
	key   string
	res   corev1.ResourceName
	value string
}

// encodeRecord writes the OvercommitRecord of ratios and originals exactly
// as encoding/json writes it (keys sorted, a repeated key's last value,
// its float format), without building the record's maps or reflecting:
// that was a tenth of the webhook's cost per pod. ok is false for ratios
// JSON cannot represent.
func encodeRecord(ratios RecordedRatios, originals []recordedOriginal) (_ string, ok bool) {
	slices.SortStableFunc(originals, func(a, b recordedOriginal) int {
		if c := strings.Compare(a.key, b.key); c != 0 {
			return c
		}
		return strings.Compare(string(a.res), string(b.res))
	})
	buf := make([]byte, 0, 64+48*len(originals))
	buf = append(buf, `{"ratios":{"cpu":`...)
	if buf, ok = jsonenc.AppendFloat(buf, ratios.CPU); !ok {
		return "", false
	}
	buf = append(buf, `,"memory":`...)
	if buf, ok = jsonenc.AppendFloat(buf, ratios.Memory); !ok {
		return "", false
	}
	buf = append(buf, '}')
	opened, lastKey := false, ""
	for i, o := range originals {
		if i+1 < len(originals) && originals[i+1].key == o.key && originals[i+1].res == o.res {
			continue // a map keeps the last value
		}
		switch {
		case !opened:
			buf = append(buf, `,"originals":{`...)
		case lastKey == o.key:
			buf = append(buf, ',')
		default:
			buf = append(buf, "},"...)
		}
		if !opened || lastKey != o.key {
			buf = jsonenc.AppendString(buf, o.key)
			buf = append(buf, ":{"...)
		}
		buf = jsonenc.AppendString(buf, string(o.res))
		buf = append(buf, ':')
		buf = jsonenc.AppendString(buf, o.value)
		opened, lastKey = true, o.key
	}
	if opened {
		buf = append(buf, "}}"...)
	}
	return string(append(buf, '}')), true
}

// RecordedRatios are the limit:request ratios applied to a pod.
type RecordedRatios struct {
	CPU    float64 `json:"cpu"`
	Memory float64 `json:"memory"`
}

// ParseOvercommitRecord decodes the annotation value.
func ParseOvercommitRecord(value string) (OvercommitRecord, error) {
	var r OvercommitRecord
	err := json.Unmarshal([]byte(value), &r)
	return r, err
}

// original returns the recorded original request, if any and parsable.
func (r OvercommitRecord) original(key string, res corev1.ResourceName) (resource.Quantity, bool) {
	s, ok := r.Originals[key][res]
	if !ok {
		return resource.Quantity{}, false
	}
	q, err := resource.ParseQuantity(s)
	return q, err == nil
}

func (r RecordedRatios) of(res corev1.ResourceName) float64 {
	if res == corev1.ResourceCPU {
		return r.CPU
	}
	return r.Memory
}

// overcommitted lists the only resources overcommit touches; extended
// resources (GPUs and the like) are never lowered.
func overcommitted() [2]corev1.ResourceName {
	return [2]corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory}
}

// resourceSlot is one place a pod declares resources.
type resourceSlot struct {
	key       string
	res       *corev1.ResourceRequirements
	limitType corev1.LimitType // which LimitRange items apply
	// ownsRequests is set once res.Requests is a copy this slot may write.
	ownsRequests bool
}

// setRequest writes one request into a private copy of the slot's
// requests: copyForMutation shares resource lists with the input pod.
func (s *resourceSlot) setRequest(res corev1.ResourceName, q resource.Quantity) {
	if !s.ownsRequests {
		s.res.Requests = maps.Clone(s.res.Requests)
		if s.res.Requests == nil {
			s.res.Requests = corev1.ResourceList{}
		}
		s.ownsRequests = true
	}
	s.res.Requests[res] = q
}

func resourceSlots(spec *corev1.PodSpec) []resourceSlot {
	slots := make([]resourceSlot, 0, len(spec.InitContainers)+len(spec.Containers)+1)
	for i := range spec.InitContainers {
		c := &spec.InitContainers[i]
		slots = append(slots, resourceSlot{key: "initContainers/" + c.Name, res: &c.Resources, limitType: corev1.LimitTypeContainer})
	}
	for i := range spec.Containers {
		c := &spec.Containers[i]
		slots = append(slots, resourceSlot{key: "containers/" + c.Name, res: &c.Resources, limitType: corev1.LimitTypeContainer})
	}
	if spec.Resources != nil {
		slots = append(slots, resourceSlot{key: "pod", res: spec.Resources, limitType: corev1.LimitTypePod})
	}
	return slots
}

// targetCalculator computes the request a resource with a given limit
// should have.
type targetCalculator struct {
	floors      map[corev1.ResourceName]resource.Quantity
	limitRanges []corev1.LimitRange
}

func newTargetCalculator(cfg *config.Config, limitRanges []corev1.LimitRange) targetCalculator {
	floors := make(map[corev1.ResourceName]resource.Quantity, 2)
	if q := cfg.Overcommit.MinCPURequest; q != nil {
		floors[corev1.ResourceCPU] = *q
	}
	if q := cfg.Overcommit.MinMemoryRequest; q != nil {
		floors[corev1.ResourceMemory] = *q
	}
	return targetCalculator{floors: floors, limitRanges: limitRanges}
}

// target is ceil(limit/ratio) (cpu in millicores, memory in bytes), raised
// to the configured floor, to every applicable LimitRange min and to
// ceil(limit/maxLimitRequestRatio), and capped at the limit.
func (tc targetCalculator) target(res corev1.ResourceName, limit resource.Quantity, ratio decimalRatio, limitType corev1.LimitType) resource.Quantity {
	target, ok := ratio.divideRoundingUp(res, limit)
	if !ok {
		return limit
	}
	raise := func(q resource.Quantity) {
		if q.Cmp(target) > 0 {
			target = q
		}
	}
	if f, ok := tc.floors[res]; ok {
		raise(f)
	}
	for _, lr := range tc.limitRanges {
		for _, item := range lr.Spec.Limits {
			if item.Type != limitType {
				continue
			}
			if m, ok := item.Min[res]; ok {
				raise(m)
			}
			if r, ok := item.MaxLimitRequestRatio[res]; ok && r.Sign() > 0 {
				if q, ok := divideRoundingUp(res, limit, quantityRat(r)); ok {
					raise(q)
				} else {
					raise(limit)
				}
			}
		}
	}
	if target.Cmp(limit) > 0 {
		return limit
	}
	return target
}

// divideRoundingUp returns q/divisor rounded up to whole millicores (cpu)
// or bytes (everything else). ok is false when the result does not fit.
func divideRoundingUp(res corev1.ResourceName, q resource.Quantity, divisor *big.Rat) (resource.Quantity, bool) {
	r := quantityRat(q)
	r.Quo(r, divisor)
	if res == corev1.ResourceCPU {
		r.Mul(r, big.NewRat(1000, 1))
	}
	n := ceilRat(r)
	if !n.IsInt64() {
		return resource.Quantity{}, false
	}
	if res == corev1.ResourceCPU {
		return *resource.NewMilliQuantity(n.Int64(), q.Format), true
	}
	return *resource.NewQuantity(n.Int64(), q.Format), true
}

// quantityRat is the exact value of q.
func quantityRat(q resource.Quantity) *big.Rat {
	d := q.AsDec() // q is a copy; converting its representation is harmless
	r := new(big.Rat).SetInt(d.UnscaledBig())
	scale := int64(d.Scale())
	switch {
	case scale > 0:
		r.Quo(r, new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(scale), nil)))
	case scale < 0:
		r.Mul(r, new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(-scale), nil)))
	}
	return r
}

// decimalRatio is a ratio as the decimal an admin wrote: 1.1 is 11/10, not
// the binary float just above it, so ceil(1100m/1.1) is 1000m, not 1001m.
// It divides in 64-bit integers when the ratio and the quantity allow it
// (always, for ratios written with up to 18 digits and limits below
// 9.2 exa-units) and exactly with big.Rat otherwise: the rational
// arithmetic alone was a quarter of the webhook's cost per request.
type decimalRatio struct {
	value    float64
	num, den uint64 // the shortest decimal reading back as value; den == 0 if it does not fit
}

func newDecimalRatio(ratio float64) decimalRatio {
	r := decimalRatio{value: ratio}
	if !(ratio > 0) {
		return r
	}
	digits := strconv.FormatFloat(ratio, 'f', -1, 64)
	whole, frac, _ := strings.Cut(digits, ".")
	if len(whole)+len(frac) > 18 {
		return r
	}
	num, err := strconv.ParseUint(whole+frac, 10, 64)
	if err != nil || num == 0 {
		return r
	}
	den := uint64(1)
	for range len(frac) {
		den *= 10
	}
	r.num, r.den = num, den
	return r
}

// divideRoundingUp returns q/ratio rounded up to whole millicores (cpu) or
// bytes (everything else). ok is false when the result does not fit.
func (r decimalRatio) divideRoundingUp(res corev1.ResourceName, q resource.Quantity) (resource.Quantity, bool) {
	if r.den != 0 && q.Sign() > 0 {
		var units int64
		var unit resource.Quantity
		if res == corev1.ResourceCPU {
			units = q.MilliValue()
			unit = *resource.NewMilliQuantity(units, q.Format)
		} else {
			units = q.Value()
			unit = *resource.NewQuantity(units, q.Format)
		}
		// MilliValue and Value round up: the shortcut holds only when q is
		// a whole number of units.
		if units > 0 && unit.Cmp(q) == 0 {
			hi, lo := bits.Mul64(uint64(units), r.den)
			if hi < r.num {
				quo, rem := bits.Div64(hi, lo, r.num)
				if rem != 0 {
					quo++
				}
				if quo != 0 && quo <= math.MaxInt64 {
					if res == corev1.ResourceCPU {
						return *resource.NewMilliQuantity(int64(quo), q.Format), true
					}
					return *resource.NewQuantity(int64(quo), q.Format), true
				}
			}
		}
	}
	return divideRoundingUp(res, q, ratioRat(r.value))
}

// ratioRat is the exact rational form of decimalRatio, for the quantities
// the integer shortcut cannot divide.
func ratioRat(ratio float64) *big.Rat {
	r, ok := new(big.Rat).SetString(strconv.FormatFloat(ratio, 'g', -1, 64))
	if !ok {
		return big.NewRat(1, 1)
	}
	return r
}

func ceilRat(r *big.Rat) *big.Int {
	// Euclidean division by a positive denominator floors; negate twice to
	// round up.
	n := new(big.Int).Neg(r.Num())
	n.Div(n, r.Denom())
	return n.Neg(n)
}

func minQuantity(a, b resource.Quantity) resource.Quantity {
	if b.Cmp(a) < 0 {
		return b
	}
	return a
}

// applyOvercommit lowers requests of a (copied) pod and records what it did
// in the annotation. It reports whether the pod changed.
func applyOvercommit(cfg *config.Config, pod *corev1.Pod, cpuRatio, memoryRatio float64, limitRanges []corev1.LimitRange) bool {
	var previous OvercommitRecord
	prevValue, hadAnnotation := pod.Annotations[config.AnnotationOvercommit]
	if hadAnnotation {
		// An unparsable annotation is ignored and, if anything changes,
		// replaced.
		previous, _ = ParseOvercommitRecord(prevValue)
	}
	ratios := RecordedRatios{CPU: cpuRatio, Memory: memoryRatio}
	decimalRatios := [2]decimalRatio{newDecimalRatio(cpuRatio), newDecimalRatio(memoryRatio)}
	tc := newTargetCalculator(cfg, limitRanges)
	var originals []recordedOriginal
	changed := false

	for _, slot := range resourceSlots(&pod.Spec) {
		for i, res := range overcommitted() {
			limit, hasLimit := slot.res.Limits[res]
			if !hasLimit || limit.Sign() <= 0 {
				continue
			}
			// The API server defaults a missing request to the limit before
			// admission; treat a missing one the same way.
			arrived, hasRequest := slot.res.Requests[res]
			if !hasRequest {
				arrived = limit
			}
			original := arrived
			recorded, wasRecorded := previous.original(slot.key, res)
			// A genuine earlier pass only ever lowered the request, so a
			// recorded value below the current one is stale.
			if wasRecorded && recorded.Cmp(arrived) >= 0 {
				original = recorded
			} else {
				wasRecorded = false
			}
			ratio := ratios.of(res)
			if ratio == 1 && !wasRecorded {
				continue
			}
			request := minQuantity(original, tc.target(res, limit, decimalRatios[i], slot.limitType))
			if request.Cmp(original) != 0 {
				originals = append(originals, recordedOriginal{key: slot.key, res: res, value: original.String()})
			}
			if request.Cmp(arrived) != 0 {
				slot.setRequest(res, request)
				changed = true
			}
		}
	}

	if len(originals) == 0 {
		// Nothing is overcommitted: an annotation (copied from another pod,
		// say) would only mislead resize.
		if hadAnnotation {
			delete(pod.Annotations, config.AnnotationOvercommit)
			if len(pod.Annotations) == 0 {
				pod.Annotations = nil
			}
			return true
		}
		return changed
	}
	encoded, ok := encodeRecord(ratios, originals)
	if !ok {
		return changed
	}
	if !hadAnnotation || prevValue != string(encoded) {
		if pod.Annotations == nil {
			pod.Annotations = map[string]string{}
		}
		pod.Annotations[config.AnnotationOvercommit] = string(encoded)
		changed = true
	}
	return changed
}

// resizeOvercommit recomputes requests of containers whose limit changed
// while their request did not, with the ratios recorded at creation.
func resizeOvercommit(cfg *config.Config, oldPod, newPod *corev1.Pod, limitRanges []corev1.LimitRange) bool {
	value, ok := oldPod.Annotations[config.AnnotationOvercommit]
	if !ok {
		return false
	}
	record, err := ParseOvercommitRecord(value)
	if err != nil {
		return false
	}
	oldSlots := map[string]*corev1.ResourceRequirements{}
	for _, s := range resourceSlots(&oldPod.Spec) {
		oldSlots[s.key] = s.res
	}
	tc := newTargetCalculator(cfg, limitRanges)
	changed := false
	for _, slot := range resourceSlots(&newPod.Spec) {
		old, ok := oldSlots[slot.key]
		if !ok {
			continue
		}
		for _, res := range overcommitted() {
			ratio := record.Ratios.of(res)
			if !(ratio >= config.MinRatio && ratio <= config.MaxRatio) {
				continue
			}
			newLimit, hasNewLimit := slot.res.Limits[res]
			if !hasNewLimit || newLimit.Sign() <= 0 {
				continue
			}
			oldLimit, hasOldLimit := old.Limits[res]
			if hasOldLimit && oldLimit.Cmp(newLimit) == 0 {
				continue
			}
			oldRequest, hadRequest := old.Requests[res]
			current, hasRequest := slot.res.Requests[res]
			if hadRequest != hasRequest || (hasRequest && oldRequest.Cmp(current) != 0) {
				continue // the client chose the request itself
			}
			if !hasRequest {
				current = newLimit
			}
			// A request that was the limit (limit-only container) follows
			// the limit; an explicit one stays the ceiling.
			original := current
			if recorded, ok := record.original(slot.key, res); ok {
				original = recorded
				if hasOldLimit && recorded.Cmp(oldLimit) == 0 {
					original = newLimit
				}
			}
			request := minQuantity(original, tc.target(res, newLimit, newDecimalRatio(ratio), slot.limitType))
			if request.Cmp(current) != 0 {
				slot.setRequest(res, request)
				changed = true
			}
		}
	}
	return changed
}
