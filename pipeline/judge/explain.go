package judge

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// explain is a metric's Why: both sides' values, the effect and its interval, the sample
// sizes, the test, and the rule that decided.
func explain(r MetricResult, m Metric) string {
	var side string
	switch {
	case m.Kind == Rate && r.EventsBaseline+r.EventsCanary == 0:
		return fmt.Sprintf("%s: canary 0/%d vs baseline 0/%d, no events on either side: %s", m.Name, r.NCanary, r.NBaseline, r.Outcome)
	case m.Kind == Rate:
		side = fmt.Sprintf("canary %s (%d/%d) vs baseline %s (%d/%d)",
			formatRate(r.Canary), r.EventsCanary, r.NCanary, formatRate(r.Baseline), r.EventsBaseline, r.NBaseline)
	case r.Share:
		side = fmt.Sprintf("canary %s (%d of %d) vs baseline %s (%d of %d)",
			formatRate(share(r.EventsCanary, r.NCanary)), r.EventsCanary, r.NCanary,
			formatRate(share(r.EventsBaseline, r.NBaseline)), r.EventsBaseline, r.NBaseline)
	case r.Test == testNonZero:
		side = fmt.Sprintf("non-zero alone in %d episode(s) on the canary, %d on the baseline", r.EventsCanary, r.EventsBaseline)
	default:
		side = fmt.Sprintf("canary %s vs baseline %s", formatValue(r.Canary, m.Unit), formatValue(r.Baseline, m.Unit))
	}
	n := ""
	if m.Kind != Rate {
		n = fmt.Sprintf(", n=%d/%d in %d intervals (%s)", r.NCanary, r.NBaseline, r.Intervals, r.Test)
	}
	if r.Bursts > 0 {
		n += fmt.Sprintf(", %d burst interval(s) with %d events left out", r.Bursts, r.BurstEvents)
	}
	if r.Dispersion >= 1.5 {
		n += fmt.Sprintf(", counts vary ×%.1f more than chance (allowed for)", r.Dispersion)
	}
	return fmt.Sprintf("%s: %s, %s [%s, %s]%s, %s: %s", m.Name, side,
		formatEffect(r.Effect), formatEffect(r.Low), formatEffect(r.High), n, r.Reason, r.Outcome)
}

// share is events of trials (0 without trials).
func share(events, trials int) float64 {
	if trials <= 0 {
		return 0
	}
	return float64(events) / float64(trials)
}

// rule says which comparison decided the outcome.
func rule(r MetricResult, m Metric, lv level) string {
	allowed := allowedText(m)
	worse := (m.Direction != Decrease && r.Low > 0) || (m.Direction != Increase && r.High < 0)
	switch {
	case r.Classification == High:
		return "significantly higher, beyond the allowed " + allowed
	case r.Classification == Low:
		return "significantly lower, beyond the allowed " + allowed
	case lv.decide == 0 && lv.wait != "":
		return lv.wait
	case lv.decide == 0:
		return fmt.Sprintf("too early to decide (look %d of %d)", lv.look, lv.looks)
	case worse:
		return "significantly worse, but within the allowed " + allowed
	case r.Outcome == Marginal:
		return "worse than the allowed " + allowed + ", not significantly so yet"
	case r.Low > 0 || r.High < 0:
		return "a significant change in the harmless direction"
	}
	return "no significant change"
}

func allowedText(m Metric) string {
	p := formatPercent(m.AllowedEffect)
	switch m.Direction {
	case Decrease:
		return "-" + p
	case Either:
		return "±" + p
	}
	return "+" + p
}

// formatEffect prints a relative change: +110%, -3.5%, +∞.
func formatEffect(e float64) string {
	switch {
	case e >= maxEffect:
		return "+∞"
	case e <= -maxEffect:
		return "-∞"
	}
	s := formatPercent(math.Abs(e))
	if e < 0 && s != "0%" {
		return "-" + s
	}
	return "+" + s
}

func formatPercent(f float64) string {
	p := 100 * f
	switch {
	case p >= 10:
		return strconv.FormatFloat(p, 'f', 0, 64) + "%"
	case p >= 0.05:
		return strings.TrimSuffix(strconv.FormatFloat(p, 'f', 1, 64), ".0") + "%"
	case p == 0:
		return "0%"
	}
	return strconv.FormatFloat(p, 'g', 2, 64) + "%"
}

func formatRate(f float64) string {
	if f == 0 {
		return "0%"
	}
	return strconv.FormatFloat(100*f, 'g', 3, 64) + "%"
}

// formatValue prints a value in its unit: s and ms as durations, bytes in powers of 1024.
func formatValue(v float64, unit string) string {
	g := func(x float64) string { return strconv.FormatFloat(x, 'g', 3, 64) }
	switch unit {
	case "s", "seconds":
		if math.Abs(v) < 1 {
			return g(v*1000) + " ms"
		}
		return g(v) + " s"
	case "ms":
		return g(v) + " ms"
	case "bytes":
		for _, u := range []string{"B", "KiB", "MiB", "GiB"} {
			if math.Abs(v) < 1024 || u == "GiB" {
				return g(v) + " " + u
			}
			v /= 1024
		}
	case "", "1":
		return g(v)
	}
	return g(v) + " " + unit
}
