package loadaware

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/harbormaster-dev/harbormaster/pkg/utilization"
)

// ScoreAnnotation holds a placed pod's explanation, see docs/scheduling.md.
const ScoreAnnotation = "harbormaster.io/score"

// Explanation is the compact, stable form of the chosen node's score and
// the runner-up's, as written to ScoreAnnotation. CPU and Mem are the
// utilisation fractions the score was computed from (measured plus
// estimate), absent when unknown; Src names the sources, "none" when the
// node was neutral for lack of data; Est counts pods bound since the sample
// that were estimated rather than measured.
type Explanation struct {
	NodeScoreSummary
	RunnerUp *NodeScoreSummary `json:"runnerUp,omitempty"`
}

// NodeScoreSummary is one node's part of an Explanation.
type NodeScoreSummary struct {
	Node  string   `json:"node"`
	Score int64    `json:"score"`
	CPU   *float64 `json:"cpu,omitempty"`
	Mem   *float64 `json:"mem,omitempty"`
	Src   string   `json:"src"`
	Est   int      `json:"est,omitempty"`
}

// String renders the annotation's JSON, so text logs show values rather
// than the pointers of the optional fields.
func (e Explanation) String() string {
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Sprintf("<unencodable explanation: %v>", err)
	}
	return string(b)
}

func explain(chosen, runnerUp *assessment) Explanation {
	e := Explanation{NodeScoreSummary: summarize(chosen)}
	if runnerUp != nil {
		r := summarize(runnerUp)
		e.RunnerUp = &r
	}
	return e
}

func summarize(a *assessment) NodeScoreSummary {
	s := NodeScoreSummary{Node: a.Node, Score: a.Score}
	var sources []string
	for r, rd := range a.Readings {
		if !rd.Known {
			continue
		}
		v := math.Round(rd.Util()*100) / 100
		switch r {
		case utilization.CPU:
			s.CPU = &v
		case utilization.Memory:
			s.Mem = &v
		}
		s.Est = max(s.Est, rd.PendingPods)
		if !slices.Contains(sources, rd.Source) {
			sources = append(sources, rd.Source)
		}
	}
	slices.Sort(sources)
	s.Src = strings.Join(sources, "+")
	if s.Src == "" {
		s.Src = "none"
	}
	return s
}

// annotationPatch is a JSON merge patch setting ScoreAnnotation.
func annotationPatch(e Explanation) ([]byte, error) {
	return json.Marshal(map[string]any{
		"metadata": map[string]any{"annotations": map[string]string{ScoreAnnotation: e.String()}},
	})
}
