package config

import (
	"fmt"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/yaml"
)

// DecodeLoadAwareArgs turns the args a plugin factory receives into
// defaulted, validated LoadAwareArgs. obj may be nil (no pluginConfig
// entry), a *runtime.Unknown (the scheduler's config file) or a
// *LoadAwareArgs (built in code). Unlike frameworkruntime.DecodeInto, which
// ignores unknown fields, decoding is strict so a misspelt field fails
// scheduler start-up instead of silently taking its default.
func DecodeLoadAwareArgs(obj runtime.Object) (*LoadAwareArgs, error) {
	args := &LoadAwareArgs{}
	switch o := obj.(type) {
	case nil:
	case *LoadAwareArgs:
		if o != nil {
			args = o.DeepCopy()
		}
	case *runtime.Unknown:
		if len(o.Raw) > 0 {
			// JSON is YAML, so one strict decoder serves both content types.
			if err := yaml.UnmarshalStrict(o.Raw, args); err != nil {
				return nil, fmt.Errorf("decoding %s: %w", LoadAwareArgsKind, err)
			}
		}
	default:
		return nil, fmt.Errorf("want args of type %s, got %T", LoadAwareArgsKind, obj)
	}
	SetDefaultsLoadAwareArgs(args)
	if err := ValidateLoadAwareArgs(field.NewPath("args"), args); err != nil {
		return nil, fmt.Errorf("invalid %s: %w", LoadAwareArgsKind, err)
	}
	return args, nil
}
