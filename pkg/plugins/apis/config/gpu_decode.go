package config

import (
	"fmt"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/yaml"
)

// DecodeGPUArgs turns the args a plugin factory receives into defaulted,
// validated GPUArgs, strictly, like DecodeLoadAwareArgs: obj may be nil, a
// *runtime.Unknown from the scheduler's config file, or a *GPUArgs.
func DecodeGPUArgs(obj runtime.Object) (*GPUArgs, error) {
	args := &GPUArgs{}
	switch o := obj.(type) {
	case nil:
	case *GPUArgs:
		if o != nil {
			args = o.DeepCopy()
		}
	case *runtime.Unknown:
		if len(o.Raw) > 0 {
			if err := yaml.UnmarshalStrict(o.Raw, args); err != nil {
				return nil, fmt.Errorf("decoding %s: %w", GPUArgsKind, err)
			}
		}
	default:
		return nil, fmt.Errorf("want args of type %s, got %T", GPUArgsKind, obj)
	}
	SetDefaultsGPUArgs(args)
	if err := ValidateGPUArgs(field.NewPath("args"), args); err != nil {
		return nil, fmt.Errorf("invalid %s: %w", GPUArgsKind, err)
	}
	return args, nil
}
