package bot

import (
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/immunity-app/immunity/pipeline/judge"
)

// VerdictSummary is the verdict's one line: "PASS (score 100, final): reason".
func VerdictSummary(v judge.Verdict) string {
	when := "final"
	if !v.Final {
		when = fmt.Sprintf("look %d", v.Look)
		if v.Looks > 0 {
			when += fmt.Sprintf(" of %d", v.Looks)
		}
	}
	return fmt.Sprintf("%s (score %.0f, %s): %s", strings.ToUpper(string(v.Outcome)), v.Score, when, v.Reason)
}

// VerdictTable renders the metric comparison, canary against baseline, as aligned
// columns for a monospaced block (Slack code block, terminal).
func VerdictTable(v judge.Verdict) string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "metric\tresult\tbaseline\tcanary\teffect\tinterval\tn")
	for _, r := range v.Metrics {
		name := r.Name
		if r.Critical {
			name += "*"
		}
		base, can, eff, ci := "-", "-", "-", "-"
		if r.NBaseline > 0 && r.NCanary > 0 && r.Outcome != judge.Error {
			base, can = value(r, r.Baseline), value(r, r.Canary)
			eff, ci = effect(r.Effect), "["+effect(r.Low)+", "+effect(r.High)+"]"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d/%d\n", clip(name), r.Outcome, base, can, eff, ci, r.NCanary, r.NBaseline)
	}
	tw.Flush()
	return strings.TrimRight(b.String(), "\n")
}

func value(r judge.MetricResult, x float64) string {
	g := strconv.FormatFloat(x, 'g', 3, 64)
	switch {
	case r.Kind == judge.Rate:
		return strconv.FormatFloat(100*x, 'g', 3, 64) + "%"
	case r.Unit == "s" || r.Unit == "seconds":
		return strconv.FormatFloat(1000*x, 'g', 3, 64) + "ms"
	case r.Unit != "":
		return g + r.Unit
	}
	return g
}

func effect(e float64) string {
	if e >= 1e9 {
		return "+∞"
	}
	s := strconv.FormatFloat(100*e, 'f', 1, 64) + "%"
	if e >= 0 {
		s = "+" + s
	}
	return s
}
