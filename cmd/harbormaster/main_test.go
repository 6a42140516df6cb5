package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"

	"github.com/harbormaster-dev/harbormaster/pkg/audit"
)

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(t.Context(), args, streams{out: &out, errOut: &errOut})
	return code, out.String(), errOut.String()
}

func TestExplainExitCodes(t *testing.T) {
	tenant := []string{"--namespace", "testdata/namespace.yaml", "--config", "testdata/config.yaml"}
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantOut    string
		wantErrOut string
	}{
		{name: "admitted", args: append([]string{"explain", "-f", "testdata/pod.yaml"}, tenant...), wantCode: exitOK, wantOut: "Result: ADMITTED"},
		{name: "denied", args: append([]string{"explain", "-f", "testdata/pod-wildcard-toleration.yaml"}, tenant...), wantCode: exitDenied, wantOut: "HM-DH-003"},
		{name: "json", args: append([]string{"explain", "-f", "testdata/daemonset.yaml", "-o", "json"}, tenant...), wantCode: exitOK, wantOut: `"endpoint": "/mutate-daemonsets"`},
		{name: "flags instead of a namespace file", args: []string{"explain", "-f", "testdata/pod-wildcard-toleration.yaml", "--config", "testdata/config.yaml",
			"--namespace-name", "team-a-web", "--namespace-label", "harbormaster.io/tenant=team-a", "--user", "alice"}, wantCode: exitDenied, wantOut: "user:      alice"},
		{name: "missing file", args: append([]string{"explain", "-f", "testdata/nope.yaml"}, tenant...), wantCode: exitFailure, wantErrOut: "testdata/nope.yaml"},
		{name: "missing config", args: []string{"explain", "-f", "testdata/pod.yaml"}, wantCode: exitFailure, wantErrOut: `"config" not set`},
		{name: "config is not a config", args: []string{"explain", "-f", "testdata/pod.yaml", "--config", "testdata/pod.yaml"}, wantCode: exitFailure, wantErrOut: "testdata/pod.yaml: "},
		{name: "namespace is not a namespace", args: []string{"explain", "-f", "testdata/pod.yaml", "--config", "testdata/config.yaml", "--namespace", "testdata/pod.yaml"},
			wantCode: exitFailure, wantErrOut: "testdata/pod.yaml: kind: Pod, want Namespace"},
		{name: "exclusive namespace flags", args: append([]string{"explain", "-f", "testdata/pod.yaml", "--namespace-name", "x"}, tenant...), wantCode: exitFailure, wantErrOut: "exclusive"},
		{name: "bad label", args: []string{"explain", "-f", "testdata/pod.yaml", "--config", "testdata/config.yaml", "--namespace-label", "no-value"}, wantCode: exitFailure, wantErrOut: "key=value"},
		{name: "bad operation", args: append([]string{"explain", "-f", "testdata/pod.yaml", "--operation", "DELETE"}, tenant...), wantCode: exitFailure, wantErrOut: "--operation"},
		{name: "bad output", args: append([]string{"explain", "-f", "testdata/pod.yaml", "-o", "yaml"}, tenant...), wantCode: exitFailure, wantErrOut: "--output"},
		{name: "unknown command", args: []string{"explian"}, wantCode: exitFailure, wantErrOut: "unknown command"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, tc.args...)
			assert.Equal(t, tc.wantCode, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
			assert.Contains(t, out, tc.wantOut)
			assert.Contains(t, errOut, tc.wantErrOut)
		})
	}
}

func TestPolicyCommands(t *testing.T) {
	code, out, _ := runCLI(t, "policy", "test")
	assert.Equal(t, exitOK, code)
	assert.Contains(t, out, "PASS embedded policies")
	assert.Contains(t, out, "HM-HG-001")
	assert.Contains(t, out, "input leaves out (no policy names them): metadata.managedFields, status, spec.volumes,")

	// A bundle whose own test fails is rejected, as the webhook would.
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "rules.rego"), []byte(`package harbormaster.demo

# METADATA
# title: Demo
# custom:
#   id: HM-DEMO-001
#   severity: low
#   enforcement: deny
deny contains {"id": "HM-DEMO-001", "msg": "demo", "field": ""} if input.request.name == "demo"
`), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "rules_test.rego"), []byte(`package harbormaster.demo_test

import data.harbormaster.demo

test_demo_denied if count(demo.deny) == 1 with input as {"request": {"name": "other"}}
`), 0o644))
	code, _, errOut := runCLI(t, "policy", "test", dir)
	assert.Equal(t, exitFailure, code)
	assert.Contains(t, errOut, "test_demo_denied")
	assert.Contains(t, errOut, dir)

	code, _, errOut = runCLI(t, "policy", "test", filepath.Join(dir, "missing"))
	assert.Equal(t, exitFailure, code)
	assert.Contains(t, errOut, "missing")

	// The catalog of a directory, to a file, and its check.
	catalog := filepath.Join(t.TempDir(), "catalog.md")
	code, _, errOut = runCLI(t, "policy", "catalog", "--policies", dir, "-o", catalog)
	require.Equal(t, exitOK, code, errOut)
	data, err := os.ReadFile(catalog)
	require.NoError(t, err)
	assert.Contains(t, string(data), "Generated from the policies' METADATA")
	assert.Contains(t, string(data), "HM-DEMO-001")
	code, _, _ = runCLI(t, "policy", "catalog", "--policies", dir, "--check", catalog)
	assert.Equal(t, exitOK, code)
	code, _, errOut = runCLI(t, "policy", "catalog", "--check", catalog)
	assert.Equal(t, exitFailure, code)
	assert.Contains(t, errOut, "make catalog")
}

func TestAuditRejectsBadFlags(t *testing.T) {
	code, _, errOut := runCLI(t, "audit", "--max-results-per-report", "0")
	assert.Equal(t, exitFailure, code)
	assert.Contains(t, errOut, "--max-results-per-report")

	code, _, errOut = runCLI(t, "audit", "--kubeconfig", filepath.Join(t.TempDir(), "missing"))
	assert.Equal(t, exitFailure, code)
	assert.Contains(t, errOut, "kubeconfig")
}

func TestAuditOutput(t *testing.T) {
	results := []audit.NamespaceReport{{
		Namespace: "team-a-web", Pods: 2, Summary: audit.Summary{Pass: 33, Fail: 1},
		Results: []audit.Result{{Policy: "HM-DH-003", Result: audit.ResultFail, Source: audit.ResultSource,
			Resources: []corev1.ObjectReference{{APIVersion: "v1", Kind: "Pod", Namespace: "team-a-web", Name: "greedy"}}}},
	}}
	var out bytes.Buffer
	require.NoError(t, printReports(streams{out: &out}, results))
	assert.Contains(t, out.String(), "kind: PolicyReport")
	assert.Contains(t, out.String(), "name: harbormaster-audit")
	assert.NotContains(t, out.String(), "creationTimestamp")

	out.Reset()
	require.NoError(t, printSummary(streams{out: &out}, results))
	assert.Regexp(t, `team-a-web\s+2\s+33\s+1\s+0\s+0\s+1\s+policyreports/harbormaster-audit`, out.String())
}
