package policy

import (
	"bufio"
	"fmt"
	"io"
	"strings"

	"github.com/harbormaster-dev/harbormaster/pkg/config"
)

// RuleInfo is the catalog entry of one deny or warn rule, read from its
// METADATA.
type RuleInfo struct {
	ID          string `json:"id"`
	Title       string `json:"title"`
	Description string `json:"description"`
	Severity    string `json:"severity"`
	// Enforcement is the rule's declared default, before any override of
	// config policy.enforcement.
	Enforcement config.Enforcement `json:"enforcement"`
	Control     string             `json:"control"`
	// Package is the Rego package without "data.", e.g. harbormaster.gpu.
	Package string `json:"package"`
	// Set is deny or warn: the document the rule adds violations to.
	Set  string `json:"set"`
	File string `json:"file"`
	Row  int    `json:"row"`
}

// Location is file:row of the rule.
func (r RuleInfo) Location() string { return fmt.Sprintf("%s:%d", r.File, r.Row) }

// RenderCatalogMarkdown writes the catalog as a Markdown document: a
// summary table, then one section per rule with its description.
func RenderCatalogMarkdown(w io.Writer, catalog []RuleInfo) error {
	bw := bufio.NewWriter(w)
	p := func(format string, args ...any) { fmt.Fprintf(bw, format, args...) }

	p("# Harbormaster policy catalog\n\n")
	p("| ID | Title | Severity | Enforcement | Control | Source |\n")
	p("|----|-------|----------|-------------|---------|--------|\n")
	for _, r := range catalog {
		p("| [%s](#%s) | %s | %s | %s | %s | `%s` |\n",
			r.ID, anchor(r.ID), cell(r.Title), cell(r.Severity), r.Enforcement, cell(r.Control), r.Location())
	}
	for _, r := range catalog {
		title := r.Title
		if title == "" {
			title = "(untitled)"
		}
		p("\n## %s\n\n**%s**\n\n", r.ID, title)
		if r.Description != "" {
			p("%s\n\n", r.Description)
		}
		p("- Severity: %s\n", orDash(r.Severity))
		p("- Default enforcement: %s (set `%s`)\n", r.Enforcement, r.Set)
		p("- Control: %s\n", orDash(r.Control))
		p("- Source: `%s` (package `%s`)\n", r.Location(), r.Package)
	}
	return bw.Flush()
}

// cell keeps a value inside its table cell: a pipe or newline would end it.
func cell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.Join(strings.Fields(s), " ")
}

// anchor is the heading id GitHub-flavoured Markdown gives "## <id>".
func anchor(id string) string { return strings.ToLower(id) }

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
