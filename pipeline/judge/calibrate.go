package judge

import (
	"errors"
	"math"
	"slices"

	"gonum.org/v1/gonum/stat/distuv"
)

// Calibration: what two production hosts on the same release differ by, measured on the
// user's own recorded A/A windows rather than assumed. Each window is replayed through
// the same per-interval evidence the judge uses (ranks within intervals, paired levels,
// counts), and since nothing changed, every difference is allowance:
//
//   - for a value metric, the autocovariances γ_h of the per-interval differences d (h =
//     0..maxLag, about 0, pooled over windows; γ_0 less the sampling variance) are fitted
//     by the model of paired.go, γ_h = offset² + drift²·φ^h for h ≥ 1 and
//     γ_0 = offset² + drift² + noise²: φ on a grid, offset² and drift² by non-negative
//     least squares;
//   - for a rate, the extra-binomial dispersion of the intervals' counts, pooled;
//   - then, for every metric, the inflation: the windows are replayed look by look with
//     the allowance found, and the root mean square of the statistic each look tests
//     (which a model that holds makes a standard normal) says how much wider the
//     intervals must be on these data (replay).
//
// A mostly-zero gauge needs no allowance: its sign test is exact.

const maxLag = 5

// clipShrink is E[min(Z², huberK²)] for a standard normal Z: what clipping at huberK
// takes from a variance that has no bursts.
const clipShrink = 0.9206

// Calibrate estimates every metric's Allowance from A/A windows, each a sequence of
// intervals. Metrics without data in any window are left out of the result.
func Calibrate(ms []Metric, windows [][]Input) (map[string]Allowance, error) {
	if len(windows) == 0 {
		return nil, errors.New("calibrate: no A/A windows")
	}
	out := map[string]Allowance{}
	for i, m := range ms {
		var hs []*history
		for _, w := range windows {
			s := NewSequence(ms, Options{})
			for _, in := range w {
				s.add(in)
			}
			hs = append(hs, &s.hist[i])
		}
		var a Allowance
		var ok bool
		if m.Kind == Rate {
			a, ok = calibrateRate(hs)
		} else {
			a, ok = calibrateValues(hs)
		}
		if ok {
			a.Windows = len(windows)
			out[m.Name] = a
		}
	}
	for i, m := range ms {
		a, ok := out[m.Name]
		if !ok {
			continue
		}
		m.Allowance = a
		if f := replay(i, m, ms, windows); f > 1 {
			a.Inflation = round3(f)
			out[m.Name] = a
		}
	}
	return out, nil
}

// replay runs metric i (with its allowance m) through every look of the A/A windows, as a
// live window would be judged, and returns the root mean square of its standardized
// statistic over the looks that may decide (0 when none). Nothing changed in these
// windows, so a model that holds gives 1; more says by how much its intervals are too
// narrow on the user's data.
func replay(i int, m Metric, ms []Metric, windows [][]Input) float64 {
	minK := Options{}.withDefaults().MinIntervals
	sum, n := 0.0, 0
	for _, w := range windows {
		s := NewSequence(ms, Options{})
		for k, in := range w {
			s.addOne(i, in)
			if k+1 < minK {
				continue
			}
			if z, ok := s.hist[i].standardized(m); ok {
				sum += z * z
				n++
			}
		}
	}
	if n == 0 {
		return 0
	}
	return math.Sqrt(sum / float64(n))
}

// standardized is the statistic a look tests, on the scale of a standard normal under
// no change: a value metric's effect over its standard error (Student's t mapped to the
// normal), a rate's canary events against their expectation under no change over their
// standard deviation.
func (h *history) standardized(m Metric) (float64, bool) {
	if m.Kind == Rate {
		bs := burstCheck(h.rates)
		if !bs.ok {
			return 0, false
		}
		k, _ := tested(m, counts(total(h.rates)), bs)
		x := k.xb + k.xc
		if x <= 0 || k.nb <= 0 || k.nc <= 0 {
			return 0, false
		}
		p := k.nc / (k.nc + k.nb)
		return (k.xc - x*p) / math.Sqrt(x*p*(1-p)), true
	}
	ev := h.evidence()
	if ev.test == testNonZero || len(ev.points) == 0 || identical(ev.points) {
		return 0, false
	}
	e := combine(ev.points, m.Allowance)
	if e.se <= 0 || e.df <= 0 {
		return 0, false
	}
	t := e.est / e.se
	if math.IsInf(e.df, 1) || e.df > 1e4 {
		return t, true
	}
	p := distuv.StudentsT{Mu: 0, Sigma: 1, Nu: e.df}.CDF(t)
	p = math.Min(math.Max(p, 1e-12), 1-1e-12)
	return distuv.UnitNormal.Quantile(p), true
}

func calibrateRate(hs []*history) (Allowance, bool) {
	num, den := 0.0, 0.0
	for _, h := range hs {
		bs := burstCheck(h.rates)
		if bs.strata < 2 {
			continue
		}
		num += bs.phi * float64(bs.strata-1)
		den += float64(bs.strata - 1)
	}
	if den == 0 {
		return Allowance{}, false
	}
	return Allowance{Dispersion: round3(num / den)}, true
}

func calibrateValues(hs []*history) (Allowance, bool) {
	var gamma, count [maxLag + 1]float64
	meanV, nv := 0.0, 0.0
	var series [][]point
	var abs []float64
	for _, h := range hs {
		ev := h.evidence()
		if ev.test == testNonZero {
			return Allowance{}, false
		}
		series = append(series, ev.points)
		for _, p := range ev.points {
			abs = append(abs, math.Abs(p.d))
		}
	}
	// Bursts are the judge's Huber step's business, not the allowance's: differences
	// beyond huberK robust standard deviations count as that far. A point's standard
	// deviation is its own: its sampling variance (a warm-up's share of fewer hits is
	// noisier than the rest) and the excess all share, so a noisy interval is not clipped
	// more than a quiet one (which would take the excess for less than it is).
	slices.Sort(abs)
	for _, ps := range series {
		for _, p := range ps {
			meanV += p.v
			nv++
		}
	}
	if nv == 0 {
		return Allowance{}, false
	}
	meanV /= nv
	robust := 1.4826 * median(abs)
	e0 := math.Max(0, robust*robust-meanV)
	var us []float64
	for _, ps := range series {
		for _, p := range ps {
			if sd := math.Sqrt(p.v + e0); sd > 0 {
				us = append(us, math.Abs(p.d)/sd)
			}
		}
	}
	slices.Sort(us)
	scale := 1.4826 * median(us)
	clipAt := func(p point) float64 {
		if e0+p.v == 0 {
			return huberK * robust
		}
		return huberK * scale * math.Sqrt(p.v+e0)
	}
	for _, ps := range series {
		for i, p := range ps {
			for lag := 0; lag <= maxLag && i+lag < len(ps); lag++ {
				q := ps[i+lag]
				gamma[lag] += clamp(p.d, clipAt(p)) * clamp(q.d, clipAt(q))
				count[lag]++
			}
		}
	}
	for lag := range gamma {
		if count[lag] > 0 {
			gamma[lag] /= count[lag] * clipShrink
		}
	}
	g0 := math.Max(0, gamma[0]-meanV)
	best, bestPhi, bestO, bestT := math.Inf(1), 0.0, 0.0, 0.0
	for step := 0; step <= 19; step++ {
		phi := 0.05 * float64(step)
		o2, t2 := fitLags(gamma[:], count[:], phi)
		sse := 0.0
		for lag := 1; lag <= maxLag; lag++ {
			if count[lag] > 0 {
				r := gamma[lag] - o2 - t2*math.Pow(phi, float64(lag))
				sse += count[lag] * r * r
			}
		}
		if sse < best {
			best, bestPhi, bestO, bestT = sse, phi, o2, t2
		}
	}
	bestO, bestT = math.Min(bestO, g0), math.Min(bestT, math.Max(0, g0-bestO))
	a := Allowance{Offset: round3(math.Sqrt(bestO)), Drift: round3(math.Sqrt(bestT)),
		Noise: round3(math.Sqrt(math.Max(0, g0-bestO-bestT)))}
	if a.Drift > 0 {
		a.DriftCorr = math.Round(100*bestPhi) / 100
	}
	return a, true
}

// fitLags fits γ_h = o² + t²·φ^h (h = 1..maxLag) by weighted least squares with o², t² ≥ 0.
func fitLags(gamma, count []float64, phi float64) (o2, t2 float64) {
	var s11, s12, s22, b1, b2 float64
	for lag := 1; lag <= maxLag; lag++ {
		w, x := count[lag], math.Pow(phi, float64(lag))
		s11 += w
		s12 += w * x
		s22 += w * x * x
		b1 += w * gamma[lag]
		b2 += w * x * gamma[lag]
	}
	if det := s11*s22 - s12*s12; det > 1e-12*s11*s22 {
		o2, t2 = (s22*b1-s12*b2)/det, (s11*b2-s12*b1)/det
		if o2 >= 0 && t2 >= 0 {
			return o2, t2
		}
	}
	// On the boundary: one of them alone.
	oOnly := math.Max(0, b1/math.Max(s11, 1e-300))
	tOnly := 0.0
	if s22 > 0 {
		tOnly = math.Max(0, b2/s22)
	}
	sse := func(o, t float64) float64 {
		e := 0.0
		for lag := 1; lag <= maxLag; lag++ {
			r := gamma[lag] - o - t*math.Pow(phi, float64(lag))
			e += count[lag] * r * r
		}
		return e
	}
	if sse(oOnly, 0) <= sse(0, tOnly) {
		return oOnly, 0
	}
	return 0, tOnly
}

func clamp(x, c float64) float64 {
	if c <= 0 {
		return x
	}
	return math.Max(-c, math.Min(c, x))
}

func round3(x float64) float64 {
	if x == 0 {
		return 0
	}
	p := math.Pow(10, 3-math.Ceil(math.Log10(math.Abs(x))))
	return math.Round(x*p) / p
}
