package explain

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/harbormaster-dev/harbormaster/pkg/config"
)

// RenderText writes the report for a terminal: the object, the mutation,
// then the decision, most severe violation first.
func RenderText(w io.Writer, r Report) error {
	bw := bufio.NewWriter(w)
	p := func(format string, args ...any) { fmt.Fprintf(bw, format, args...) }

	p("%s (%s %s)\n", r.Object, r.Operation, r.Object.APIVersion)
	user := r.User.Username
	if user == "" {
		user = "(none)"
	}
	p("  user:      %s", user)
	if len(r.User.Groups) > 0 {
		p(" groups %s", strings.Join(r.User.Groups, ", "))
	}
	p("\n  namespace: %s %s\n", r.Namespace.Name, labelsString(r.Namespace.Labels))
	if r.Tenant != "" {
		p("  tenant:    %s\n", r.Tenant)
	}

	m := r.Mutation
	p("\nMutation")
	if m.Endpoint == "" {
		p(": none. %s\n", m.Note)
	} else {
		p(" (POST %s)\n", m.Endpoint)
		switch {
		case m.Skipped != "":
			p("  skipped: %s\n", m.Skipped)
		case len(m.Applied) == 0:
			p("  applied: nothing (the object already complies)\n")
		default:
			p("  applied: %s\n", strings.Join(m.Applied, ", "))
		}
		for _, warning := range m.Warnings {
			p("  warning: %s\n", warning)
		}
		renderResources(p, m)
		if m.Placement != nil {
			renderPlacement(p, m.Placement)
		}
		p("  JSON patch: %d operation(s)\n", len(m.Patch))
		for _, op := range m.Patch {
			line, err := json.Marshal(op)
			if err != nil {
				return err
			}
			p("    %s\n", line)
		}
	}

	d := r.Decision
	p("\nPolicy decision (on the mutated object; bundle %s)\n", d.BundleRevision)
	if d.ExemptNamespace {
		p("  namespace %s is exempt: no rule applies\n", r.Namespace.Name)
	}
	if d.Error != "" {
		p("  evaluation failed: %s\n", d.Error)
	}
	for _, v := range d.Violations {
		sev := v.Severity
		if sev == "" {
			sev = "-"
		}
		p("  %-6s %s [%s] %s\n", strings.ToUpper(string(v.Enforcement)), v.ID, sev, v.Title)
		if v.Field != "" {
			p("         field:   %s\n", v.Field)
		}
		p("         message: %s\n", v.Msg)
	}
	if len(d.Violations) == 0 && d.Error == "" {
		p("  no violation\n")
	}
	verdict := "ADMITTED"
	if !r.Admitted {
		verdict = "DENIED"
	}
	p("\nResult: %s (%s)\n", verdict, d.Result)
	return bw.Flush()
}

func renderResources(p func(string, ...any), m Mutation) {
	if len(m.Resources) == 0 {
		return
	}
	p("  requests:")
	if m.Overcommit != nil {
		p(" (overcommit ratios cpu %g, memory %g)", m.Overcommit.CPU, m.Overcommit.Memory)
	}
	p("\n")
	for _, c := range m.Resources {
		name := c.Container
		switch {
		case name == "":
			name = "(pod)"
		case c.Init:
			name = "init " + name
		}
		var parts []string
		for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			before, after, limit := quantity(c.RequestsBefore, res), quantity(c.RequestsAfter, res), quantity(c.Limits, res)
			if before == "-" && after == "-" && limit == "-" {
				continue
			}
			change := before
			if before != after {
				change = before + " -> " + after
			}
			parts = append(parts, fmt.Sprintf("%s %s (limit %s)", res, change, limit))
		}
		if len(parts) == 0 {
			parts = []string{"no cpu or memory"}
		}
		p("    %-20s %s\n", name, strings.Join(parts, ", "))
	}
}

func quantity(list corev1.ResourceList, name corev1.ResourceName) string {
	q, ok := list[name]
	if !ok {
		return "-"
	}
	return q.String()
}

func renderPlacement(p func(string, ...any), pl *Placement) {
	p("  placement:\n")
	p("    host groups:     %s\n", orNone(pl.HostGroups, "not confined to a host group"))
	if len(pl.DedicatedPools) > 0 {
		p("    dedicated pools: %s (required)\n", strings.Join(pl.DedicatedPools, ", "))
	}
	if len(pl.OwnedPools) > 0 {
		p("    owned pools:     %s\n", strings.Join(pl.OwnedPools, ", "))
	}
	if len(pl.ExcludedPools) > 0 {
		p("    kept off pools:  %s\n", strings.Join(pl.ExcludedPools, ", "))
	}
	if pl.RequiredAfter != nil || pl.RequiredBefore != nil {
		p("    required node affinity, before: %s\n", termsString(pl.RequiredBefore))
		p("    required node affinity, after:  %s\n", termsString(pl.RequiredAfter))
	}
	for _, t := range pl.PreferredAdded {
		p("    preferred node affinity added: weight %d: %s\n", t.Weight, termString(t.Preference))
	}
	for _, t := range pl.TolerationsAdded {
		p("    toleration added: %s\n", tolerationString(t))
	}
}

func orNone(list []string, none string) string {
	if len(list) == 0 {
		return none
	}
	return strings.Join(list, ", ")
}

func termsString(terms []corev1.NodeSelectorTerm) string {
	if len(terms) == 0 {
		return "none"
	}
	parts := make([]string, len(terms))
	for i, t := range terms {
		parts[i] = "(" + termString(t) + ")"
	}
	return strings.Join(parts, " OR ")
}

func termString(t corev1.NodeSelectorTerm) string {
	var parts []string
	for _, r := range t.MatchExpressions {
		parts = append(parts, requirementString(r))
	}
	for _, r := range t.MatchFields {
		parts = append(parts, "field "+requirementString(r))
	}
	if len(parts) == 0 {
		return "empty term, matches no node"
	}
	return strings.Join(parts, " AND ")
}

func requirementString(r corev1.NodeSelectorRequirement) string {
	if len(r.Values) == 0 {
		return fmt.Sprintf("%s %s", r.Key, r.Operator)
	}
	return fmt.Sprintf("%s %s [%s]", r.Key, r.Operator, strings.Join(r.Values, ", "))
}

func tolerationString(t corev1.Toleration) string {
	s := t.Key
	if t.Operator == corev1.TolerationOpExists {
		s += " Exists"
	} else {
		s += "=" + t.Value
	}
	if t.Effect != "" {
		s += ":" + string(t.Effect)
	}
	return s
}

func labelsString(labels map[string]string) string {
	if len(labels) == 0 {
		return "(no labels)"
	}
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + labels[k]
	}
	s := "{" + strings.Join(parts, ", ") + "}"
	if _, ok := labels[config.LabelTenant]; !ok {
		s += " (no tenant label)"
	}
	return s
}
