// Command harbormaster is the auditor's and admin's tool: it explains what
// the webhook would do to an object (offline), audits the pods already
// running and writes PolicyReports, renders the policy catalog and tests a
// policy bundle before it goes into the ConfigMap.
//
// Exit codes: 0 success (explain: admitted), 1 error or bad input,
// 3 explain: the request would be denied.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"k8s.io/klog/v2"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitDenied  = 3
)

// exitCode is an outcome that is not an error but sets the exit code, such
// as a denied explain.
type exitCode int

func (c exitCode) Error() string { return fmt.Sprintf("exit code %d", int(c)) }

// streams are where commands write; tests pass buffers.
type streams struct {
	out    io.Writer
	errOut io.Writer
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], streams{out: os.Stdout, errOut: os.Stderr})
	stop()
	os.Exit(code)
}

// run executes one command line and returns the process exit code.
func run(ctx context.Context, args []string, s streams) int {
	root := newRootCommand(s)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	var code exitCode
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &code):
		return int(code)
	default:
		fmt.Fprintln(s.errOut, "harbormaster:", err)
		return exitFailure
	}
}

func newRootCommand(s streams) *cobra.Command {
	root := &cobra.Command{
		Use:   "harbormaster",
		Short: "Explain, audit and document Harbormaster's admission rules and policies",
		Long: `harbormaster is the auditor's and admin's tool for Harbormaster.

  explain         what the webhook would do to an object, offline
  audit           judge the running pods and write PolicyReports
  policy catalog  render the policy catalog from the policies' METADATA
  policy test     compile a policy bundle and run its tests

Exit codes: 0 success (explain: admitted), 1 error or bad input,
3 explain: the request would be denied.`,
		SilenceUsage:      true,
		SilenceErrors:     true,
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
	}
	root.SetOut(s.out)
	root.SetErr(s.errOut)
	// Only klog's verbosity: the CLI logs little, and only for audit.
	klogFlags := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(klogFlags)
	root.PersistentFlags().AddGoFlag(klogFlags.Lookup("v"))

	root.AddCommand(newExplainCommand(s), newAuditCommand(s), newPolicyCommand(s))
	return root
}
