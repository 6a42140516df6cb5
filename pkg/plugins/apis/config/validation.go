package config

import (
	"fmt"
	"net/url"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/harbormaster-dev/harbormaster/pkg/utilization"
)

// SchedulerConfigAPIVersion is the only apiVersion accepted inside args.
const SchedulerConfigAPIVersion = "kubescheduler.config.k8s.io/v1"

func supportedResources() []string {
	return []string{string(utilization.CPU), string(utilization.Memory)}
}

// ValidateLoadAwareArgs checks defaulted args. Errors name the field path
// relative to path, e.g. args.scoringStrategy.resources[0].weight.
func ValidateLoadAwareArgs(path *field.Path, args *LoadAwareArgs) error {
	var errs field.ErrorList
	if args.Kind != "" && args.Kind != LoadAwareArgsKind {
		errs = append(errs, field.NotSupported(path.Child("kind"), args.Kind, []string{LoadAwareArgsKind}))
	}
	if args.APIVersion != "" && args.APIVersion != SchedulerConfigAPIVersion {
		errs = append(errs, field.NotSupported(path.Child("apiVersion"), args.APIVersion, []string{SchedulerConfigAPIVersion}))
	}
	errs = append(errs, validateStrategy(path.Child("scoringStrategy"), args.ScoringStrategy)...)
	errs = append(errs, validateFilter(path.Child("filter"), args.Filter)...)
	errs = append(errs, validateEstimation(path.Child("estimation"), args.Estimation)...)

	windowPath := path.Child("stalenessWindow")
	if args.StalenessWindow == nil || args.StalenessWindow.Duration <= 0 {
		errs = append(errs, field.Invalid(windowPath, durationString(args.StalenessWindow), "must be positive"))
	}
	errs = append(errs, validateSources(path.Child("sources"), args.Sources, args.StalenessWindow)...)
	return errs.ToAggregate()
}

func validateStrategy(path *field.Path, s *ScoringStrategy) field.ErrorList {
	var errs field.ErrorList
	if s == nil {
		return append(errs, field.Required(path, ""))
	}
	if _, ok := Strategies()[s.Type]; !ok {
		errs = append(errs, field.NotSupported(path.Child("type"), s.Type, sets.List(sets.KeySet(Strategies()))))
	}
	seen := sets.New[string]()
	var totalWeight int64
	for i, r := range s.Resources {
		p := path.Child("resources").Index(i)
		errs = append(errs, validateResourceName(p.Child("name"), r.Name, seen)...)
		if r.Weight < 0 || r.Weight > 100 {
			errs = append(errs, field.Invalid(p.Child("weight"), r.Weight, "must be in [0, 100]"))
		} else {
			totalWeight += r.Weight
		}
		if s.Type == TargetUtilization && (r.TargetPercent < 1 || r.TargetPercent > 99) {
			// 0 and 100 would make one branch of the score divide by zero.
			errs = append(errs, field.Invalid(p.Child("targetPercent"), r.TargetPercent, "must be in [1, 99]"))
		}
	}
	if totalWeight == 0 {
		errs = append(errs, field.Invalid(path.Child("resources"), s.Resources, "at least one resource needs a positive weight"))
	}
	return errs
}

func validateResourceName(path *field.Path, name string, seen sets.Set[string]) field.ErrorList {
	if !sets.New(supportedResources()...).Has(name) {
		return field.ErrorList{field.NotSupported(path, name, supportedResources())}
	}
	if seen.Has(name) {
		return field.ErrorList{field.Duplicate(path, name)}
	}
	seen.Insert(name)
	return nil
}

func validateFilter(path *field.Path, f *FilterArgs) field.ErrorList {
	var errs field.ErrorList
	if f == nil {
		return nil
	}
	seen := sets.New[string]()
	for i, t := range f.Thresholds {
		p := path.Child("thresholds").Index(i)
		errs = append(errs, validateResourceName(p.Child("name"), t.Name, seen)...)
		if t.Percent < 1 || t.Percent > 100 {
			errs = append(errs, field.Invalid(p.Child("percent"), t.Percent, "must be in [1, 100]"))
		}
	}
	return errs
}

func validateEstimation(path *field.Path, e *EstimationArgs) field.ErrorList {
	var errs field.ErrorList
	if e == nil {
		return append(errs, field.Required(path, ""))
	}
	modes := []string{string(EstimateNone), string(EstimateRequest), string(EstimateLimit)}
	if !sets.New(modes...).Has(string(e.Mode)) {
		errs = append(errs, field.NotSupported(path.Child("mode"), e.Mode, modes))
	}
	if e.RequestPercent == nil || *e.RequestPercent < 1 || *e.RequestPercent > 1000 {
		var v any
		if e.RequestPercent != nil {
			v = *e.RequestPercent
		}
		errs = append(errs, field.Invalid(path.Child("requestPercent"), v, "must be in [1, 1000]"))
	}
	return errs
}

func validateSources(path *field.Path, s *SourcesArgs, window *metav1.Duration) field.ErrorList {
	var errs field.ErrorList
	if s == nil || (s.Prometheus == nil && s.MetricsServer == nil) {
		return append(errs, field.Required(path, "at least one of prometheus, metricsServer"))
	}
	if p := s.Prometheus; p != nil {
		pp := path.Child("prometheus")
		if u, err := url.Parse(p.Address); p.Address == "" {
			errs = append(errs, field.Required(pp.Child("address"), "the base URL of the Prometheus HTTP API"))
		} else if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, field.Invalid(pp.Child("address"), p.Address, "must be an http or https URL with a host"))
		}
		for r, q := range p.Queries {
			qp := pp.Child("queries").Key(r)
			if !sets.New(supportedResources()...).Has(r) {
				errs = append(errs, field.NotSupported(qp, r, supportedResources()))
			} else if q == "" {
				errs = append(errs, field.Required(qp, ""))
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
		errs = append(errs, validateRefresh(pp, p.RefreshInterval, p.Timeout, window)...)
	}
	if m := s.MetricsServer; m != nil {
		errs = append(errs, validateRefresh(path.Child("metricsServer"), m.RefreshInterval, m.Timeout, window)...)
	}
	return errs
}

func validateRefresh(path *field.Path, interval, timeout, window *metav1.Duration) field.ErrorList {
	var errs field.ErrorList
	switch {
	case interval == nil || interval.Duration <= 0:
		errs = append(errs, field.Invalid(path.Child("refreshInterval"), durationString(interval), "must be positive"))
	case window != nil && window.Duration > 0 && interval.Duration >= window.Duration:
		errs = append(errs, field.Invalid(path.Child("refreshInterval"), durationString(interval),
			fmt.Sprintf("must be shorter than stalenessWindow (%v), or samples go stale between refreshes", window.Duration)))
	}
	switch {
	case timeout == nil || timeout.Duration <= 0:
		errs = append(errs, field.Invalid(path.Child("timeout"), durationString(timeout), "must be positive"))
	case interval != nil && timeout.Duration > interval.Duration:
		errs = append(errs, field.Invalid(path.Child("timeout"), durationString(timeout), "must not exceed refreshInterval"))
	}
	return errs
}

func durationString(d *metav1.Duration) string {
	if d == nil {
		return "<unset>"
	}
	return d.Duration.String()
}

// Strategies lists the supported strategy types; the plugin maps each to a
// score function.
func Strategies() map[StrategyType]struct{} {
	return map[StrategyType]struct{}{LeastUtilized: {}, TargetUtilization: {}}
}
