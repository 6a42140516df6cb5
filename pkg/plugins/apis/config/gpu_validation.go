package config

import (
	"fmt"
	"net/url"

	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// GPUStrategies lists the supported GPU strategy types.
func GPUStrategies() []GPUStrategyType {
	return []GPUStrategyType{GPUStrategyFGD, GPUStrategyBestFit, GPUStrategyPacking, GPUStrategySpread, GPUStrategyDotProduct, GPUStrategyRandom}
}

// ValidateGPUArgs checks defaulted args. Errors name the field path
// relative to path.
func ValidateGPUArgs(path *field.Path, args *GPUArgs) error {
	var errs field.ErrorList
	if args.Kind != "" && args.Kind != GPUArgsKind {
		errs = append(errs, field.NotSupported(path.Child("kind"), args.Kind, []string{GPUArgsKind}))
	}
	if args.APIVersion != "" && args.APIVersion != SchedulerConfigAPIVersion {
		errs = append(errs, field.NotSupported(path.Child("apiVersion"), args.APIVersion, []string{SchedulerConfigAPIVersion}))
	}
	errs = append(errs, validateGPUStrategy(path.Child("scoringStrategy"), args.ScoringStrategy)...)
	errs = append(errs, validatePercent(path.Child("nonGPUPodPenalty"), args.NonGPUPodPenalty, 0, 100)...)
	if args.Workload == nil {
		errs = append(errs, field.Required(path.Child("workload"), ""))
	} else {
		errs = append(errs, validatePercent(path.Child("workload", "window"), args.Workload.Window, 1, 1000000)...)
	}
	errs = append(errs, validateGPUUtilization(path.Child("utilization"), args.Utilization)...)
	return errs.ToAggregate()
}

func validateGPUStrategy(path *field.Path, s *GPUScoringStrategy) field.ErrorList {
	var errs field.ErrorList
	if s == nil {
		return append(errs, field.Required(path, ""))
	}
	if !sets.New(GPUStrategies()...).Has(s.Type) {
		errs = append(errs, field.NotSupported(path.Child("type"), s.Type, GPUStrategies()))
	}
	names := []string{GPUResourceGPU, GPUResourceCPU, GPUResourceMemory}
	seen := sets.New[string]()
	var total int64
	for i, r := range s.Resources {
		p := path.Child("resources").Index(i)
		switch {
		case !sets.New(names...).Has(r.Name):
			errs = append(errs, field.NotSupported(p.Child("name"), r.Name, names))
		case seen.Has(r.Name):
			errs = append(errs, field.Duplicate(p.Child("name"), r.Name))
		}
		seen.Insert(r.Name)
		if r.Weight < 0 || r.Weight > 100 {
			errs = append(errs, field.Invalid(p.Child("weight"), r.Weight, "must be in [0, 100]"))
		} else {
			total += r.Weight
		}
	}
	if total == 0 {
		errs = append(errs, field.Invalid(path.Child("resources"), s.Resources, "at least one resource needs a positive weight"))
	}
	return errs
}

func validatePercent(path *field.Path, v *int64, lo, hi int64) field.ErrorList {
	if v == nil {
		return field.ErrorList{field.Required(path, "")}
	}
	if *v < lo || *v > hi {
		return field.ErrorList{field.Invalid(path, *v, fmt.Sprintf("must be in [%d, %d]", lo, hi))}
	}
	return nil
}

func validateGPUUtilization(path *field.Path, u *GPUUtilizationArgs) field.ErrorList {
	var errs field.ErrorList
	if u == nil {
		return append(errs, field.Required(path, ""))
	}
	errs = append(errs, validatePercent(path.Child("weight"), u.Weight, 0, 100)...)
	if u.StalenessWindow == nil || u.StalenessWindow.Duration <= 0 {
		errs = append(errs, field.Invalid(path.Child("stalenessWindow"), durationString(u.StalenessWindow), "must be positive"))
	}
	p := u.Prometheus
	if p == nil {
		return errs
	}
	pp := path.Child("prometheus")
	if addr, err := url.Parse(p.Address); p.Address == "" {
		errs = append(errs, field.Required(pp.Child("address"), "the base URL of the Prometheus HTTP API"))
	} else if err != nil || (addr.Scheme != "http" && addr.Scheme != "https") || addr.Host == "" {
		errs = append(errs, field.Invalid(pp.Child("address"), p.Address, "must be an http or https URL with a host"))
	}
	keys := []string{DCGMQueryUtil, DCGMQueryFBUsed, DCGMQueryFBFree}
	for k, q := range p.Queries {
		switch {
		case !sets.New(keys...).Has(k):
			errs = append(errs, field.NotSupported(pp.Child("queries").Key(k), k, keys))
		case q == "":
			errs = append(errs, field.Required(pp.Child("queries").Key(k), ""))
		}
	}
	if len(p.NodeLabels) == 0 {
		errs = append(errs, field.Required(pp.Child("nodeLabels"), ""))
	}
	for i, l := range p.NodeLabels {
		if l == "" {
			errs = append(errs, field.Required(pp.Child("nodeLabels").Index(i), ""))
		}
	}
	if p.CardLabel == "" {
		errs = append(errs, field.Required(pp.Child("cardLabel"), ""))
	}
	return append(errs, validateRefresh(pp, p.RefreshInterval, p.Timeout, u.StalenessWindow)...)
}
