package judge

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/stat/distuv"
)

// level is what one look may conclude about one metric: decide is the nominal one-sided
// error of this look's test (0: the look cannot conclude anything), show the one-sided
// error of the interval printed (decide, or the metric's whole share when decide is 0).
type level struct {
	decide, show float64
	look, looks  int
	final        bool
	wait         string // why the look cannot decide, when it is not the plan's
}

// maxEffect caps an unbounded effect (an event rate against none) so verdicts stay valid
// JSON; it prints as ∞.
const maxEffect = 1e9

// classify judges one metric with data on both sides; bs is what a rate's intervals say
// about bursts.
func classify(m Metric, b, c Data, lv level, o Options, bs bursts) MetricResult {
	r := MetricResult{Name: m.Name, Kind: m.Kind, Critical: m.Critical, Unit: m.Unit}
	if m.Kind == Rate {
		classifyCounts(&r, m, newCounts(b, c), lv, bs)
	} else {
		classifyValues(&r, m, newRanks(b.Values, c.Values), lv, o)
	}
	return r
}

func classifyValues(r *MetricResult, m Metric, rk ranks, lv level, o Options) {
	r.NBaseline, r.NCanary = len(rk.b), len(rk.c)
	if r.NBaseline == 0 || r.NCanary == 0 {
		r.Outcome = noDataOutcome(m, lv)
		r.Why = noDataWhy(m, lv, r.Outcome)
		return
	}
	r.Baseline, r.Canary = median(rk.b), median(rk.c)
	if r.NBaseline < o.MinSamples || r.NCanary < o.MinSamples {
		r.Outcome = Inconclusive
		r.Why = fmt.Sprintf("%s: n=%d/%d, fewer than %d samples on a side: %s", m.Name, r.NCanary, r.NBaseline, o.MinSamples, Inconclusive)
		return
	}
	if b := rk.b; b[0] == b[len(b)-1] && rk.c[0] == rk.c[len(rk.c)-1] && b[0] == rk.c[0] {
		r.Outcome = Pass // one value on both sides, as Kayenta passes identical data
		r.Why = fmt.Sprintf("%s: every value is %s on both sides, n=%d/%d: %s", m.Name, formatValue(b[0], m.Unit), r.NCanary, r.NBaseline, Pass)
		return
	}
	rel := func(s float64) float64 { return s - 1 }
	if !rk.ratio {
		scale := math.Abs(r.Baseline)
		if scale == 0 {
			scale = 1 // no relative scale: effects are absolute
		}
		rel = func(s float64) float64 { return s / scale }
	}
	var est, lo, hi float64
	if rk.exactOK() {
		est, lo, hi = rk.exactEstimate(lv.show)
	} else {
		est, lo, hi = rk.estimate(distuv.UnitNormal.Quantile(1 - lv.show))
	}
	r.Effect, r.Low, r.High = capEffect(rel(est)), capEffect(rel(lo)), capEffect(rel(hi))
	decide(r, m, lv)
}

func classifyCounts(r *MetricResult, m Metric, k counts, lv level, bs bursts) {
	r.NBaseline, r.NCanary = int(k.nb), int(k.nc)
	if k.nb == 0 || k.nc == 0 {
		r.Outcome = noDataOutcome(m, lv)
		r.Why = noDataWhy(m, lv, r.Outcome)
		return
	}
	r.Baseline, r.Canary = k.xb/k.nb, k.xc/k.nc
	r.EventsBaseline, r.EventsCanary = int(k.xb), int(k.xc)
	if bs.nBursts > 0 && k.nb > bs.left.nb && k.nc > bs.left.nc {
		r.Bursts = bs.nBursts
		r.BurstEvents = int(bs.left.xb + bs.left.xc)
		k = counts{xb: k.xb - bs.left.xb, nb: k.nb - bs.left.nb, xc: k.xc - bs.left.xc, nc: k.nc - bs.left.nc}
	}
	if phi := bs.phi; phi > 1 {
		r.Dispersion = phi
		k = counts{xb: k.xb / phi, nb: k.nb / phi, xc: k.xc / phi, nc: k.nc / phi}
	}
	lo, hi := k.interval(lv.show)
	r.Effect, r.Low, r.High = capEffect(k.estimate()-1), capEffect(lo-1), capEffect(hi-1)
	decide(r, m, lv)
}

func capEffect(e float64) float64 { return math.Max(-maxEffect, math.Min(e, maxEffect)) }

// decide classifies a metric from its effect and the look's interval: Fail when the
// canary is significantly worse (the whole interval on the bad side of no change) and
// its estimated effect is beyond the allowed one; Marginal when significantly worse but
// within the allowed effect; Pass otherwise. A canary that is no different never fails
// more often than alpha; a clear regression fails as soon as the data shows it.
func decide(r *MetricResult, m Metric, lv level) {
	a := m.AllowedEffect
	up := m.Direction != Decrease
	down := m.Direction == Decrease || m.Direction == Either
	r.Outcome = Pass
	if lv.decide == 0 {
		r.Outcome = Inconclusive // this look may not conclude anything yet
	} else {
		switch {
		case up && r.Low > 0 && r.Effect > a, down && r.High < 0 && r.Effect < -a:
			r.Outcome = Fail
		case up && r.Low > 0, down && r.High < 0:
			r.Outcome = Marginal
		}
	}
	r.Why = explain(*r, m, lv)
}

func noDataOutcome(m Metric, lv level) Outcome {
	if !lv.final { // data may still come
		return Inconclusive
	}
	switch m.NoData {
	case NoDataPass:
		return Pass
	case NoDataFail:
		return Fail
	}
	return Inconclusive
}
