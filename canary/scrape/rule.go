package scrape

import (
	"math"
	"strings"

	"github.com/immunity-app/immunity/canary/measure"
	"github.com/immunity-app/immunity/pipeline/judge"

	dto "github.com/prometheus/client_model/go"
)

// rule is how one metric is computed from two readings of a host.
type rule struct {
	events, trials selector
	counts         bool // a rate's, or a share gauge's, events of trials
	quantile       float64
	keep           func(*dto.Metric) bool // series filter on top of the selectors
	err            string                 // the metric cannot be scraped: why
}

// ruleFor builds a metric's rule from its spec, or the defaults for error_rate and latency.
func ruleFor(m measure.Metric, methods []string) rule {
	sp := m.Spec
	if sp.Scrape == "" {
		switch m.Name {
		case measure.ErrorRate:
			sp = measure.Spec{Scrape: measure.RequestsTotal + `{code=~"5.."}`, TrialsScrape: measure.RequestsTotal}
		case measure.Latency:
			sp = measure.Spec{Scrape: measure.DurationSeconds, Quantile: sp.Quantile}
		default:
			return rule{err: "no scrape selector configured for " + m.Name}
		}
	}
	r := rule{quantile: sp.Quantile, keep: func(*dto.Metric) bool { return true }}
	var err error
	if r.events, err = parseSelector(sp.Scrape); err != nil {
		return rule{err: err.Error()}
	}
	if m.Kind == judge.Rate && sp.TrialsScrape == "" {
		return rule{err: "a rate needs trials_scrape as well as scrape"}
	}
	if m.Kind == judge.Rate || (m.Kind == judge.Gauge && sp.TrialsScrape != "") {
		r.counts = true
		if r.trials, err = parseSelector(sp.TrialsScrape); err != nil {
			return rule{err: err.Error()}
		}
	}
	if len(methods) > 0 && !r.events.names("method") && !r.trials.names("method") {
		r.keep = only(methods)
	}
	return r
}

// only keeps the series of the given methods (and series without a method label).
func only(methods []string) func(*dto.Metric) bool {
	set := map[string]bool{}
	for _, m := range methods {
		set[strings.ToUpper(m)] = true
	}
	return func(m *dto.Metric) bool {
		for _, l := range m.GetLabel() {
			if l.GetName() == "method" {
				return set[strings.ToUpper(l.GetValue())]
			}
		}
		return true
	}
}

// apply adds one host's interval to d, or says why it cannot.
func (r rule) apply(m judge.Metric, before, now reading, d *judge.Data) string {
	if r.err != "" {
		return r.err
	}
	if r.counts {
		// A family not exposed yet has no series: nothing happened (an app exposes a
		// labelled counter from its first increment).
		e, _ := r.sum(r.events, now)
		t, _ := r.sum(r.trials, now)
		eb, _ := r.sum(r.events, before)
		tb, _ := r.sum(r.trials, before)
		e, t = measure.Increase(eb, tb, e, t)
		d.Events += e
		d.Trials += t
		return ""
	}
	fam, ok := now[r.events.name]
	if !ok {
		return "" // not exposed yet: no samples, which the judge reads as no data
	}
	switch fam.GetType() {
	case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
		delta := measure.Delta(r.buckets(before), r.buckets(now))
		if r.quantile > 0 {
			if q, ok := measure.Quantile(delta, r.quantile); ok {
				d.Values = append(d.Values, q)
			}
			return ""
		}
		d.Values = append(d.Values, measure.Samples(r.buckets(before), r.buckets(now))...)
		d.PerRequest = true
	case dto.MetricType_COUNTER:
		b, _ := r.sum(r.events, before)
		v, _ := r.sum(r.events, now)
		d.Values = append(d.Values, increase(b, v))
	case dto.MetricType_GAUGE, dto.MetricType_UNTYPED:
		v, _ := r.sum(r.events, now)
		d.Values = append(d.Values, v)
	default:
		return r.events.name + " is a " + strings.ToLower(fam.GetType().String()) + "; expected a histogram, gauge or counter"
	}
	return ""
}

func increase(before, now float64) float64 {
	if now < before {
		return now
	}
	return now - before
}

// sum adds the values of the selector's series (counter, gauge or untyped).
func (r rule) sum(sel selector, rd reading) (float64, bool) {
	fam, ok := rd[sel.name]
	if !ok {
		return 0, false
	}
	t := 0.0
	for _, m := range fam.GetMetric() {
		if !sel.matches(m) || !r.keep(m) {
			continue
		}
		switch {
		case m.Counter != nil:
			t += m.GetCounter().GetValue()
		case m.Gauge != nil:
			t += m.GetGauge().GetValue()
		case m.Untyped != nil:
			t += m.GetUntyped().GetValue()
		}
	}
	return t, true
}

// buckets adds up the cumulative buckets of the selector's histogram series.
func (r rule) buckets(rd reading) []measure.Bucket {
	fam, ok := rd[r.events.name]
	if !ok {
		return nil
	}
	byUpper := map[float64]float64{}
	for _, m := range fam.GetMetric() {
		if !r.events.matches(m) || !r.keep(m) {
			continue
		}
		h := m.GetHistogram()
		inf := false
		for _, b := range h.GetBucket() {
			byUpper[b.GetUpperBound()] += float64(b.GetCumulativeCount())
			inf = inf || math.IsInf(b.GetUpperBound(), 1)
		}
		if !inf {
			byUpper[math.Inf(1)] += float64(h.GetSampleCount())
		}
	}
	out := make([]measure.Bucket, 0, len(byUpper))
	for u, c := range byUpper {
		out = append(out, measure.Bucket{Upper: u, Count: c})
	}
	return out
}
