package judge

import (
	"fmt"
	"strings"
)

// Table renders the verdict as a Markdown table followed by each metric's explanation.
// It reads well as plain text too, so the Check Run summary, Slack and the CLI share it.
func (v Verdict) Table() string {
	var b strings.Builder
	when := "final"
	if !v.Final {
		when = fmt.Sprintf("look %d", v.Look)
		if v.Looks > 0 {
			when += fmt.Sprintf(" of %d", v.Looks)
		}
	}
	fmt.Fprintf(&b, "**%s** (score %.0f, %s): %s\n\n", strings.ToUpper(string(v.Outcome)), v.Score, when, v.Reason)
	b.WriteString("| metric | result | class | baseline | canary | effect | interval | n (canary/baseline) |\n")
	b.WriteString("| --- | --- | --- | ---: | ---: | ---: | --- | ---: |\n")
	for _, r := range v.Metrics {
		name := r.Name
		if r.Critical {
			name += " (critical)"
		}
		base, can, eff, ci := "", "", "", ""
		if r.NBaseline > 0 && r.NCanary > 0 && r.Outcome != Error {
			base, can = cell(r, r.Baseline), cell(r, r.Canary)
			if r.Kind != Rate || r.EventsBaseline+r.EventsCanary > 0 {
				eff = formatEffect(r.Effect)
				ci = "[" + formatEffect(r.Low) + ", " + formatEffect(r.High) + "]"
			}
		}
		n := ""
		if r.NBaseline > 0 || r.NCanary > 0 {
			n = fmt.Sprintf("%d/%d", r.NCanary, r.NBaseline)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", escape(name), r.Outcome, r.Classification, base, can, eff, ci, n)
	}
	b.WriteString("\n")
	for _, r := range v.Metrics {
		fmt.Fprintf(&b, "- %s\n", escape(r.Why))
	}
	return b.String()
}

func cell(r MetricResult, x float64) string {
	if r.Kind == Rate {
		return formatRate(x)
	}
	return formatValue(x, r.Unit)
}

// escape keeps metric names from breaking the table.
func escape(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
