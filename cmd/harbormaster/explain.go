package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/spf13/cobra"
	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/harbormaster-dev/harbormaster/pkg/explain"
	"github.com/harbormaster-dev/harbormaster/pkg/policy"
	"github.com/harbormaster-dev/harbormaster/policies"
)

type explainOptions struct {
	file            string
	namespaceFile   string
	namespaceName   string
	namespaceLabels []string
	limitRangesFile string
	configFile      string
	policiesDir     string
	user            string
	groups          []string
	operation       string
	output          string
	ownNamespace    string
}

func newExplainCommand(s streams) *cobra.Command {
	o := &explainOptions{}
	cmd := &cobra.Command{
		Use:   "explain -f OBJECT.yaml --config CONFIG.yaml [flags]",
		Short: "Show the mutation and the policy decisions the webhook would apply to an object, offline",
		Long: `explain runs, offline, what the API server would run for one request: its
defaulting, Harbormaster's mutating webhook (the JSON patch, the requests it
lowers, the placement it adds), then the policies on the mutated object.

The object is a Pod or a Deployment, ReplicaSet, StatefulSet, DaemonSet, Job or
CronJob. Workloads are judged as objects; only DaemonSet templates are mutated
(their pods are mutated again when created).

The namespace comes from --namespace (a Namespace manifest) or
--namespace-name and --namespace-label; without either, from the object's
metadata.namespace, without labels. --config takes a HarbormasterConfig or the
harbormaster-config ConfigMap manifest. --policies defaults to the policies
built into this binary; the bundle's own tests must pass, as in the webhook.

Exit codes: 0 admitted, 3 denied, 1 bad input.`,
		Example: `  harbormaster explain -f pod.yaml --namespace ns.yaml --config manifests/base/webhook/config.yaml
  harbormaster explain -f deploy.yaml --namespace-name team-a-web --namespace-label harbormaster.io/tenant=team-a \
      --config config.yaml --user alice --group platform-admins -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd, s) },
	}
	f := cmd.Flags()
	f.StringVarP(&o.file, "filename", "f", "", "the object (YAML or JSON) as it would be sent to the API server")
	f.StringVar(&o.namespaceFile, "namespace", "", "a Namespace manifest: the request's namespace and its labels")
	f.StringVar(&o.namespaceName, "namespace-name", "", "the request's namespace, instead of --namespace")
	f.StringArrayVar(&o.namespaceLabels, "namespace-label", nil, "a label key=value of the namespace (repeatable), with --namespace-name")
	f.StringVar(&o.limitRangesFile, "limit-ranges", "", "LimitRange manifests of the namespace (their minimums raise computed requests)")
	f.StringVar(&o.configFile, "config", "", "the HarbormasterConfig document, or the harbormaster-config ConfigMap manifest")
	f.StringVar(&o.policiesDir, "policies", "", "a policy bundle directory (default: the policies built into this binary)")
	f.StringVar(&o.user, "user", "", "the requesting user's name")
	f.StringArrayVar(&o.groups, "group", nil, "a group of the requesting user (repeatable)")
	f.StringVar(&o.operation, "operation", string(admissionv1.Create), "CREATE or UPDATE (an UPDATE is judged without an old object)")
	f.StringVarP(&o.output, "output", "o", "text", "text or json")
	f.StringVar(&o.ownNamespace, "system-namespace", explain.DefaultOwnNamespace, "the webhook's namespace (always exempt)")
	_ = cmd.MarkFlagRequired("filename")
	_ = cmd.MarkFlagRequired("config")
	return cmd
}

func (o *explainOptions) run(cmd *cobra.Command, s streams) error {
	in, err := o.input(cmd)
	if err != nil {
		return err
	}
	report, err := explain.Explain(cmd.Context(), in)
	if err != nil {
		return fmt.Errorf("%s: %w", o.file, err)
	}
	switch o.output {
	case "json":
		data, err := json.MarshalIndent(report, "", "  ")
		if err != nil {
			return err
		}
		fmt.Fprintf(s.out, "%s\n", data)
	default:
		if err := explain.RenderText(s.out, report); err != nil {
			return err
		}
	}
	if !report.Admitted {
		return exitCode(exitDenied)
	}
	return nil
}

// input reads and checks every file and flag before anything is evaluated.
func (o *explainOptions) input(cmd *cobra.Command) (explain.Input, error) {
	var in explain.Input
	if o.output != "text" && o.output != "json" {
		return in, fmt.Errorf("--output %q: must be text or json", o.output)
	}
	op := admissionv1.Operation(strings.ToUpper(o.operation))
	if op != admissionv1.Create && op != admissionv1.Update {
		return in, fmt.Errorf("--operation %q: must be CREATE or UPDATE", o.operation)
	}
	in.Operation = op
	in.OwnNamespace = o.ownNamespace
	in.User = authenticationv1.UserInfo{Username: o.user, Groups: o.groups}

	data, err := readFile(o.file)
	if err != nil {
		return in, err
	}
	if in.Object, err = explain.DecodeObject(o.file, data); err != nil {
		return in, err
	}

	switch {
	case o.namespaceFile != "" && (o.namespaceName != "" || len(o.namespaceLabels) > 0):
		return in, errors.New("--namespace and --namespace-name/--namespace-label are exclusive")
	case o.namespaceFile != "":
		data, err := readFile(o.namespaceFile)
		if err != nil {
			return in, err
		}
		if in.Namespace, err = explain.DecodeNamespace(o.namespaceFile, data); err != nil {
			return in, err
		}
	default:
		in.Namespace.Name = o.namespaceName
		if in.Namespace.Labels, err = parseLabels(o.namespaceLabels); err != nil {
			return in, err
		}
	}

	if o.limitRangesFile != "" {
		data, err := readFile(o.limitRangesFile)
		if err != nil {
			return in, err
		}
		if in.LimitRanges, err = explain.DecodeLimitRanges(o.limitRangesFile, data); err != nil {
			return in, err
		}
	}

	data, err = readFile(o.configFile)
	if err != nil {
		return in, err
	}
	if in.Config, _, err = explain.ParseConfig(o.configFile, data); err != nil {
		return in, err
	}

	in.Bundle, err = loadBundle(cmd, o.policiesDir, policy.LoadOptions{RunTests: true})
	return in, err
}

// parseLabels reads key=value flags; keys are checked as the API server
// would check a label.
func parseLabels(flags []string) (map[string]string, error) {
	labels := map[string]string{}
	for _, kv := range flags {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("--namespace-label %q: want key=value", kv)
		}
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			return nil, fmt.Errorf("--namespace-label %q: key: %s", kv, strings.Join(errs, "; "))
		}
		if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
			return nil, fmt.Errorf("--namespace-label %q: value: %s", kv, strings.Join(errs, "; "))
		}
		labels[k] = v
	}
	return labels, nil
}

// loadBundle loads a bundle directory, or the embedded policies when dir
// is empty. Load names the file and row of every problem.
func loadBundle(cmd *cobra.Command, dir string, opts policy.LoadOptions) (*policy.Bundle, error) {
	var fsys fs.FS = policies.FS
	source := "embedded policies"
	if dir != "" {
		info, err := os.Stat(dir)
		if err != nil {
			return nil, fmt.Errorf("--policies: %w", err)
		}
		if !info.IsDir() {
			return nil, fmt.Errorf("--policies %s: not a directory", dir)
		}
		fsys, source = os.DirFS(dir), dir
	}
	b, err := policy.Load(cmd.Context(), fsys, opts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	return b, nil
}

func readFile(path string) ([]byte, error) {
	if path == "" {
		return nil, errors.New("file name is empty")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err // *PathError names the file
	}
	return data, nil
}
