package decisionlog

import (
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"
)

// redactedText replaces every secret value in messages and errors.
const redactedText = "[REDACTED]"

// minSecretLen: shorter values ("1", "on", "dev") carry no secret worth the
// name, and redacting them would shred every message that happens to
// contain such a common string.
const minSecretLen = 4

// redact returns e's messages and error with every secret value replaced.
// The objects are only parsed when there is text to clean.
func redact(e Entry) ([]string, string) {
	if len(e.Messages) == 0 && e.Error == "" {
		return e.Messages, e.Error
	}
	secrets := slices.Clone(e.Secrets)
	for _, raw := range e.sources {
		secrets = append(secrets, secretValues(raw)...)
	}
	secrets = slices.DeleteFunc(secrets, func(s string) bool { return len(s) < minSecretLen })
	if len(secrets) == 0 {
		return e.Messages, e.Error
	}
	// Longest first, so that a secret containing another is replaced whole.
	slices.SortFunc(secrets, func(a, b string) int { return len(b) - len(a) })
	secrets = slices.Compact(secrets)
	pairs := make([]string, 0, 2*len(secrets))
	for _, s := range secrets {
		pairs = append(pairs, s, redactedText)
	}
	r := strings.NewReplacer(pairs...)

	out := make([]string, len(e.Messages))
	for i, m := range e.Messages {
		out[i] = r.Replace(m)
	}
	return out, r.Replace(e.Error)
}

// secretValues finds the values in an object that must never be logged:
// the value of every env var, wherever a pod spec is embedded (pods,
// templates of workloads, jobs of cron jobs), and the data of a Secret,
// both encoded and decoded.
func secretValues(raw []byte) []string {
	var obj any
	if json.Unmarshal(raw, &obj) != nil {
		return nil
	}
	var out []string
	if m, ok := obj.(map[string]any); ok && m["kind"] == "Secret" {
		for _, key := range []string{"data", "stringData"} {
			data, _ := m[key].(map[string]any)
			for _, v := range data {
				s, ok := v.(string)
				if !ok {
					continue
				}
				out = append(out, s)
				if key == "data" {
					if dec, err := base64.StdEncoding.DecodeString(s); err == nil {
						out = append(out, string(dec))
					}
				}
			}
		}
	}
	return collectEnvValues(obj, out)
}

// collectEnvValues walks the whole object rather than known paths: a value
// is a secret wherever an "env" list holds it.
func collectEnvValues(node any, out []string) []string {
	switch n := node.(type) {
	case map[string]any:
		for k, v := range n {
			if env, ok := v.([]any); ok && k == "env" {
				for _, item := range env {
					if ev, ok := item.(map[string]any); ok {
						if s, ok := ev["value"].(string); ok {
							out = append(out, s)
						}
					}
				}
				continue
			}
			out = collectEnvValues(v, out)
		}
	case []any:
		for _, v := range n {
			out = collectEnvValues(v, out)
		}
	}
	return out
}
