package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/harbormaster-dev/harbormaster/pkg/policy"
)

// catalogCommand is how docs/policies.md is regenerated; its header names
// it, and the staleness test and `make lint` tell to run it.
const catalogCommand = "go run ./cmd/harbormaster policy catalog -o docs/policies.md"

func newPolicyCommand(s streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Work with policy bundles: render the catalog, run a bundle's tests",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newCatalogCommand(s), newPolicyTestCommand(s))
	return cmd
}

func newCatalogCommand(s streams) *cobra.Command {
	var output, policiesDir, check string
	cmd := &cobra.Command{
		Use:   "catalog [-o docs/policies.md]",
		Short: "Render the policy catalog (Markdown) from the METADATA of a bundle",
		Long: `catalog renders every deny and warn rule of the bundle, from its METADATA, as
Markdown. docs/policies.md is this output for the built-in policies:
regenerate it with ` + "`make catalog`" + `; --check fails when a file differs.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := loadBundle(cmd, policiesDir, policy.LoadOptions{})
			if err != nil {
				return err
			}
			var buf bytes.Buffer
			if err := renderCatalog(&buf, b); err != nil {
				return err
			}
			if check != "" {
				current, err := os.ReadFile(check)
				if err != nil {
					return err
				}
				if !bytes.Equal(current, buf.Bytes()) {
					return fmt.Errorf("%s differs from the policies' METADATA: run `make catalog`", check)
				}
				return nil
			}
			if output == "" || output == "-" {
				_, err := s.out.Write(buf.Bytes())
				return err
			}
			return os.WriteFile(output, buf.Bytes(), 0o644)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "-", "file to write (- for stdout)")
	cmd.Flags().StringVar(&policiesDir, "policies", "", "a policy bundle directory (default: the policies built into this binary)")
	cmd.Flags().StringVar(&check, "check", "", "compare this file with the rendered catalog instead of writing; exit 1 if it differs")
	return cmd
}

// renderCatalog is the catalog document: a generated-file header, then
// the policy package's rendering.
func renderCatalog(w io.Writer, b *policy.Bundle) error {
	if _, err := fmt.Fprintf(w, "<!-- Generated from the policies' METADATA by `%s` (make catalog). Do not edit. -->\n\n", catalogCommand); err != nil {
		return err
	}
	return policy.RenderCatalogMarkdown(w, b.Catalog())
}

func newPolicyTestCommand(s streams) *cobra.Command {
	return &cobra.Command{
		Use:   "test [DIR]",
		Short: "Compile a policy bundle, check its METADATA and run its tests, as the webhook does before serving it",
		Long: `test loads a bundle directory exactly as the webhook loads the
harbormaster-policies ConfigMap: strict compilation, the METADATA contract,
then the bundle's own *_test.rego tests. Without DIR it tests the policies
built into this binary. Exit code 1 when the webhook would reject the bundle.`,
		Example: "  harbormaster policy test ./my-policies/",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := ""
			if len(args) == 1 {
				dir = args[0]
			}
			b, err := loadBundle(cmd, dir, policy.LoadOptions{RunTests: true})
			if err != nil {
				return err
			}
			name := dir
			if name == "" {
				name = "embedded policies"
			}
			fmt.Fprintf(s.out, "PASS %s: revision %s, %d files, %d rules, %d tests passed\n", name, b.Revision(), len(b.Files()), len(b.Catalog()), b.TestsRun())
			// Admins writing a policy need to know what its input lacks.
			if omitted := b.OmittedMembers(); len(omitted) > 0 {
				fmt.Fprintf(s.out, "input leaves out (no policy names them): %s\n", strings.Join(omitted, ", "))
			}
			fmt.Fprintln(s.out)
			tw := tabwriter.NewWriter(s.out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tENFORCEMENT\tSEVERITY\tTITLE\tSOURCE")
			for _, r := range b.Catalog() {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.ID, r.Enforcement, orDash(r.Severity), strings.TrimSpace(r.Title), r.Location())
			}
			return tw.Flush()
		},
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
