package main

import (
	"errors"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	"sigs.k8s.io/yaml"

	"github.com/harbormaster-dev/harbormaster/pkg/audit"
	"github.com/harbormaster-dev/harbormaster/policies"
)

type auditOptions struct {
	kubeconfig      string
	kubeContext     string
	namespace       string
	maxResults      int
	configMap       string
	policyConfigMap string
	systemNamespace string
	dryRun          bool
}

func newAuditCommand(s streams) *cobra.Command {
	o := &auditOptions{}
	cmd := &cobra.Command{
		Use:   "audit [flags]",
		Short: "Judge every running pod against the live configuration and policies; write PolicyReports",
		Long: `audit lists the pods of the cluster (or of --namespace), skips the exempt
namespaces, reads the live configuration and policies from their ConfigMaps
(the embedded policies when harbormaster-policies does not exist), judges every
pod as the CREATE that made it, and writes one PolicyReport
(wgpolicyk8s.io/v1alpha2) per namespace, named harbormaster-audit. Reports of
namespaces without pods are deleted. --dry-run prints the reports instead.

A pod owned by a built-in controller is judged as that controller's
kube-system service account; any other pod as an empty user (its creator is
not recorded). See docs/audit.md.`,
		Example: `  harbormaster audit
  harbormaster audit --namespace team-a-web --dry-run`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd, s) },
	}
	f := cmd.Flags()
	f.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or in-cluster)")
	f.StringVar(&o.kubeContext, "context", "", "kubeconfig context")
	f.StringVarP(&o.namespace, "namespace", "n", "", "audit only this namespace (default: all)")
	f.IntVar(&o.maxResults, "max-results-per-report", audit.DefaultMaxResultsPerReport, "results listed per report, most severe first; the summary always counts all")
	f.StringVar(&o.configMap, "config-map", "harbormaster-config", "the configuration ConfigMap (key config.yaml)")
	f.StringVar(&o.policyConfigMap, "policy-config-map", "harbormaster-policies", "the ConfigMap whose .rego keys replace the embedded policies while it exists")
	f.StringVar(&o.systemNamespace, "system-namespace", "harbormaster-system", "the webhook's namespace: holds the ConfigMaps, never audited")
	f.BoolVar(&o.dryRun, "dry-run", false, "print the PolicyReports (YAML) instead of writing them")
	return cmd
}

func (o *auditOptions) run(cmd *cobra.Command, s streams) error {
	if o.maxResults < 1 {
		return errors.New("--max-results-per-report: must be at least 1")
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = o.kubeconfig
	restConfig, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: o.kubeContext}).ClientConfig()
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	client, err := kubernetes.NewForConfig(restConfig)
	if err != nil {
		return err
	}
	reports, err := dynamic.NewForConfig(restConfig)
	if err != nil {
		return err
	}
	runner := &audit.Runner{
		Client: client, Reports: reports,
		Source: audit.ClusterSource{
			Client: client, Namespace: o.systemNamespace, ConfigMapName: o.configMap,
			PolicyConfigMapName: o.policyConfigMap, Embedded: policies.FS,
		},
		OwnNamespace: o.systemNamespace, Namespace: o.namespace, MaxResultsPerReport: o.maxResults,
		Log: klog.NewKlogr().WithName("audit"),
	}

	results, err := runner.Collect(cmd.Context())
	if err != nil {
		return err
	}
	if o.dryRun {
		return printReports(s, results)
	}
	if err := runner.Write(cmd.Context(), results); err != nil {
		return err
	}
	return printSummary(s, results)
}

// printReports writes the PolicyReports as a YAML stream.
func printReports(s streams, results []audit.NamespaceReport) error {
	for _, r := range results {
		u, err := audit.PolicyReportOf(r).Unstructured()
		if err != nil {
			return err
		}
		data, err := yaml.Marshal(u.Object)
		if err != nil {
			return err
		}
		fmt.Fprintf(s.out, "---\n%s", data)
	}
	return nil
}

func printSummary(s streams, results []audit.NamespaceReport) error {
	tw := tabwriter.NewWriter(s.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tPODS\tPASS\tFAIL\tWARN\tERROR\tLISTED\tREPORT")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s/%s\n", r.Namespace, r.Pods, r.Summary.Pass, r.Summary.Fail,
			r.Summary.Warn, r.Summary.Error, len(r.Results), audit.ReportResource, audit.ReportName)
	}
	return tw.Flush()
}
