package judge

import (
	"fmt"
	"math"
	"slices"
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

// Names of the tests, as explanations print them.
const (
	testRanks   = "ranks within intervals"
	testMedians = "medians within intervals"
	testPaired  = "paired intervals"
	testNonZero = "non-zero intervals"
	testCounts  = "exact count test"
)

// classifyValues judges a latency or gauge metric from its intervals.
func classifyValues(m Metric, h *history, lv level, o Options) MetricResult {
	r := MetricResult{Name: m.Name, Kind: m.Kind, Critical: m.Critical, Unit: m.Unit,
		NBaseline: h.nb, NCanary: h.nc}
	r.Baseline, r.Canary = h.typical()
	if k, ok := h.shareTotals(); ok {
		r.Share = true
		r.EventsBaseline, r.EventsCanary = int(k.xb), int(k.xc)
	}
	ev := h.evidence()
	ps, ratio := ev.points, ev.ratio
	r.Test = ev.test
	if ev.test == testNonZero {
		r.Intervals = ev.zero.n
		classifyNonZero(&r, m, ev.zero, lv, o)
		return r
	}
	r.Intervals = len(ps)
	if len(ps) == 0 {
		noData(&r, m, lv)
		return r
	}
	if identical(ps) {
		r.Outcome, r.Classification, r.Reason = Pass, Passed, "the same on both sides in every interval"
		r.Why = explain(r, m)
		return r
	}
	e := combine(ps, m.Allowance)
	e.se *= m.Allowance.inflation()
	if len(ps) < o.MinIntervals && lv.decide > 0 && !lv.final {
		lv.decide = 0
		lv.wait = fmt.Sprintf("fewer than %d intervals yet", o.MinIntervals)
	}
	c := critical(lv.show, e.df)
	toEffect := func(x float64) float64 {
		if ratio {
			return capEffect(math.Exp(x) - 1)
		}
		return capEffect(x)
	}
	r.Effect = toEffect(e.est)
	r.Low, r.High = toEffect(e.est-c*e.se), toEffect(e.est+c*e.se)
	if math.IsInf(c, 1) {
		r.Low, r.High = -maxEffect, maxEffect
		if ratio {
			r.Low = -1
		}
	}
	decide(&r, m, lv)
	return r
}

// evidence is what a value metric's history gives the test.
type evidence struct {
	test   string
	points []point // per interval (ranks or paired levels)
	ratio  bool    // points are log ratios
	zero   nonZero // a mostly-zero gauge's intervals (test testNonZero)
}

func (h *history) evidence() evidence {
	if h.perRequest {
		ratio := true
		for _, iv := range h.requests {
			ratio = ratio && iv.log
		}
		ps, medians := rankPoints(h.requests)
		test := testRanks
		if medians {
			test = testMedians
		}
		return evidence{test: test, points: ps, ratio: ratio}
	}
	lb, lc, ks := h.paired()
	if len(lb) > 0 && mostlyZero(lb, lc) {
		return evidence{test: testNonZero, zero: countNonZero(lb, lc)}
	}
	ps, ratio := pairLevels(lb, lc, ks)
	return evidence{test: testPaired, points: ps, ratio: ratio}
}

// paired is the interval levels with data on both sides, and each interval's counts
// when its levels are shares.
func (h *history) paired() (lb, lc []float64, ks []counts) {
	for i := range h.levB {
		if !math.IsNaN(h.levB[i]) && !math.IsNaN(h.levC[i]) {
			lb, lc = append(lb, h.levB[i]), append(lc, h.levC[i])
			ks = append(ks, h.shares[i])
		}
	}
	return lb, lc, ks
}

// shareTotals is a share gauge's counts over the window (false when it is not given as
// counts, or a side has no trials).
func (h *history) shareTotals() (counts, bool) {
	var sum counts
	for _, k := range h.shares {
		sum.xb, sum.nb, sum.xc, sum.nc = sum.xb+k.xb, sum.nb+k.nb, sum.xc+k.xc, sum.nc+k.nc
	}
	return sum, sum.nb > 0 && sum.nc > 0
}

// typical is each side's typical value: the median of its interval medians or levels.
func (h *history) typical() (b, c float64) {
	if h.perRequest {
		return medianOf(h.medB), medianOf(h.medC)
	}
	lb, lc, _ := h.paired()
	return medianOf(lb), medianOf(lc)
}

// pairLevels turns paired interval levels into points: log ratios when every level is
// positive, else differences relative to the baseline's median level. An interval whose
// levels are shares of counts (ks) also gets the sampling variance of its point, so the
// intervals are weighed by what each holds (combine): one of few requests, or of a
// share far from 1, counts less. The variance is the binomial one at the interval's
// pooled share p (both sides, half an event added to each outcome so an interval
// without misses is not taken as exact), p(1-p)(1/nb + 1/nc), and for a log ratio, by
// the delta method, that over p².
func pairLevels(lb, lc []float64, ks []counts) ([]point, bool) {
	ratio := true
	for i := range lb {
		if lb[i] <= 0 || lc[i] <= 0 {
			ratio = false
			break
		}
	}
	scale := relScale(medianOf(lb))
	ps := make([]point, len(lb))
	for i := range lb {
		v := 0.0
		if k := ks[i]; k.nb > 0 && k.nc > 0 {
			p := (k.xb + k.xc + 0.5) / (k.nb + k.nc + 1)
			v = p * (1 - p) * (1/k.nb + 1/k.nc)
			if ratio {
				v /= p * p
			} else {
				v /= scale * scale
			}
		}
		if ratio {
			ps[i] = point{d: math.Log(lc[i] / lb[i]), v: v}
		} else {
			ps[i] = point{d: (lc[i] - lb[i]) / scale, v: v}
		}
	}
	return ps, ratio
}

func identical(ps []point) bool {
	for _, p := range ps {
		if p.d != 0 || p.v != 0 {
			return false
		}
	}
	return true
}

// classifyNonZero judges a mostly-zero gauge by its non-zero intervals (zeros.go).
func classifyNonZero(r *MetricResult, m Metric, z nonZero, lv level, o Options) {
	if z.n < o.MinIntervals && lv.decide > 0 && !lv.final {
		lv.decide = 0
		lv.wait = fmt.Sprintf("fewer than %d intervals yet", o.MinIntervals)
	}
	r.Effect, r.Low, r.High = z.interval(lv.show)
	r.EventsBaseline, r.EventsCanary = z.epB, z.epC
	decide(r, m, lv)
}

// classifyCounts judges a rate metric from its window's counts; bs is what its intervals
// say about bursts.
func classifyCounts(m Metric, k counts, lv level, bs bursts) MetricResult {
	r := MetricResult{Name: m.Name, Kind: m.Kind, Critical: m.Critical, Unit: m.Unit, Test: testCounts}
	r.NBaseline, r.NCanary = int(k.nb), int(k.nc)
	if k.nb == 0 || k.nc == 0 {
		noData(&r, m, lv)
		return r
	}
	r.Baseline, r.Canary = k.xb/k.nb, k.xc/k.nc
	r.EventsBaseline, r.EventsCanary = int(k.xb), int(k.xc)
	if _, left := bs.without(k); left {
		r.Bursts = bs.nBursts
		r.BurstEvents = int(bs.left.xb + bs.left.xc)
	}
	k, r.Dispersion = tested(m, k, bs)
	lo, hi := k.interval(lv.show)
	r.Effect, r.Low, r.High = capEffect(k.estimate()-1), capEffect(lo-1), capEffect(hi-1)
	decide(&r, m, lv)
	return r
}

// tested is the counts a rate's test weighs: the window's, without its bursts, each
// event counted as 1/φ of one, φ the dispersion (the window's pooled with the calibrated
// one, times the calibrated inflation squared; 1 when the events vary as independent
// ones would, and then returned as 0).
func tested(m Metric, k counts, bs bursts) (counts, float64) {
	k, _ = bs.without(k)
	phi := bs.phi
	if a := m.Allowance; a.Dispersion > 0 && a.Windows > 0 {
		nu0, nu := float64(priorDFPerWindow*a.Windows), float64(max(0, bs.strata-1))
		phi = math.Max(1, (nu0*a.Dispersion+nu*bs.phi)/(nu0+nu))
	}
	phi *= math.Pow(m.Allowance.inflation(), 2)
	if phi <= 1 {
		return k, 0
	}
	return counts{xb: k.xb / phi, nb: k.nb / phi, xc: k.xc / phi, nc: k.nc / phi}, phi
}

// inflation is the calibrated inflation of the intervals (1 when none).
func (a Allowance) inflation() float64 {
	if a.Inflation > 1 {
		return a.Inflation
	}
	return 1
}

func capEffect(e float64) float64 { return math.Max(-maxEffect, math.Min(e, maxEffect)) }

// decide classifies a metric from its effect and the look's interval. Flagged (Fail,
// High or Low) when the canary is significantly worse (the whole interval on the bad
// side of no change) and its estimated effect is beyond the allowed one. Otherwise Pass;
// on an interim look Marginal when it is worse so far (significantly but within the
// allowed effect, or beyond the allowed effect but not significantly) or the look may
// not decide yet.
func decide(r *MetricResult, m Metric, lv level) {
	a := m.AllowedEffect
	up := m.Direction != Decrease
	down := m.Direction == Decrease || m.Direction == Either
	sigUp, sigDown := up && r.Low > 0, down && r.High < 0
	beyondUp, beyondDown := up && r.Effect > a, down && r.Effect < -a
	r.Outcome, r.Classification = Pass, Passed
	switch {
	case lv.decide > 0 && sigUp && beyondUp:
		r.Outcome, r.Classification = Fail, High
	case lv.decide > 0 && sigDown && beyondDown:
		r.Outcome, r.Classification = Fail, Low
	case !lv.final && (sigUp || sigDown || beyondUp || beyondDown):
		r.Outcome = Marginal
	}
	r.Reason = rule(*r, m, lv)
	r.Why = explain(*r, m)
}

// noData classifies a metric without data on a side: on the final look as its no-data
// policy says, before it Pass (data may still come).
func noData(r *MetricResult, m Metric, lv level) {
	r.Classification, r.Outcome = Nodata, Pass
	policy := m.NoData
	if policy == "" {
		policy = NoDataInconclusive
	}
	if !lv.final {
		r.Reason = "no data yet"
	} else {
		switch policy {
		case NoDataFail:
			r.Outcome = Fail
		case NoDataInconclusive:
			r.Outcome = Inconclusive
		}
		r.Reason = fmt.Sprintf("no data (no_data: %s)", policy)
	}
	r.Why = fmt.Sprintf("%s: %s: %s", m.Name, r.Reason, r.Outcome)
}

// medianOf is the median of xs without NaNs (0 when none), leaving xs as it was.
func medianOf(xs []float64) float64 {
	s := make([]float64, 0, len(xs))
	for _, x := range xs {
		if !math.IsNaN(x) {
			s = append(s, x)
		}
	}
	slices.Sort(s)
	return median(s)
}
