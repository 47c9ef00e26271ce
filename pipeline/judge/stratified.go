package judge

import (
	"math"

	"gonum.org/v1/gonum/stat/distuv"
)

// Per-request samples, stratified by interval. Within an interval both sides saw the
// same traffic and the same moment, so the interval is a stratum (van Elteren): the
// canary's requests are ranked against the baseline's of the same interval only, and the
// strata are combined (paired.go) with a variance that allows for drift across them.
//
// In one interval with m baseline and n canary requests, U counts the pairs where the
// canary request was slower (ties count 1/2) and P = U/(mn) estimates the probability
// that a canary request is slower than a baseline one; no change gives P = 1/2 whatever
// the distribution. For a shift δ on the log scale of values spread as a normal with sd σ,
// P = Φ(δ/(σ√2)), so δ = σ√2·Φ⁻¹(P) is the interval's effect, and its sampling variance
// is that of P under no change, (m+n+1)/(12mn), times (dδ/dP)² at P = 1/2, or more away
// from no change (rankPoint). σ is the interval's log-spread (the interquartile range of
// the logs over 1.349, averaged over both sides). The transform only sets the scale of
// the effect: whether it is significant rests on the ranks. Near a complete separation,
// where the ranks no longer tell how large the shift is, the difference of the medians
// estimates it.

// minPerSide is the fewest requests a side needs for an interval to count.
const minPerSide = 2

// interval summarizes one interval of per-request samples: its point, and each side's
// median and count for the explanation.
type interval struct {
	p          point
	ok, log    bool    // ok: the interval counts; log: p is on the log scale
	u, sigma   float64 // its Mann-Whitney U and log-spread (0: ties, p is the medians')
	medB, medC float64
	nb, nc     int
}

// requestInterval ranks one interval's canary requests against its baseline requests.
// Values that are not finite are left out. On the log scale when all values are positive;
// otherwise differences relative to the baseline median. sc is room to sort in.
func requestInterval(baseline, canary []float64, sc *scratch) interval {
	sc.b = sc.sorted(sc.b, baseline)
	sc.c = sc.sorted(sc.c, canary)
	b, c := sc.b, sc.c
	out := interval{nb: len(b), nc: len(c)}
	if len(b) < minPerSide || len(c) < minPerSide {
		return out
	}
	out.medB, out.medC = medianKey(b), medianKey(c)
	logScale := keyValue(b[0]) > 0 && keyValue(c[0]) > 0
	out.log = logScale
	spread := func(ks []uint64) float64 {
		q1, q3 := keyValue(ks[len(ks)/4]), keyValue(ks[(3*len(ks))/4])
		if logScale {
			return math.Log(q3/q1) / 1.349
		}
		return (q3 - q1) / 1.349
	}
	sigma := (spread(b) + spread(c)) / 2
	m, n := float64(len(b)), float64(len(c))
	if sigma <= 0 { // heavy ties: the medians are all there is
		d := out.medC - out.medB
		if logScale {
			d = math.Log(out.medC / out.medB)
		} else {
			d /= relScale(out.medB)
		}
		out.p, out.ok = point{d: d}, true
		return out
	}
	out.u, out.sigma = mannWhitneyU(b, c), sigma
	out.p, out.ok = rankPoint(out.u, sigma, m, n, out.medB, out.medC, logScale), true
	return out
}

// rankPoint is an interval's point from its Mann-Whitney U, the log-spread sigma, m
// baseline and n canary requests and each side's median: its effect and the variance of
// it under no change (rankPoints corrects it for the window's effect).
func rankPoint(u, sigma, m, n, medB, medC float64, logScale bool) point {
	p := (u + 0.5) / (m*n + 1)
	d := sigma * math.Sqrt2 * distuv.UnitNormal.Quantile(p)
	// The variance is P's under no change, mapped at P = 1/2: the transform is a scale,
	// and the evidence stays the ranks'.
	v := nullVar(sigma, m, n)
	if !logScale {
		s := relScale(medB)
		d, v = d/s, v/(s*s)
	}
	return point{d: d, v: v}
}

// rankPoints is the window's points of per-request samples. Under no change each
// interval's is its ranks' (rankPoint). Away from no change the ranks' variance is
// larger: P's own variance (Hanley & McNeil) mapped by the transform's slope at P, and
// what the spread's sampling adds to an effect proportional to it. Near a complete
// separation the ranks say little of how large the shift is, and their transform
// scatters from interval to interval; left at the variance of no change, that scatter
// would be taken for drift between the hosts, and a canary twenty times slower judged
// less surely worse than one 1.5 times slower. There the difference of the medians,
// which does not saturate, estimates the shift better. Both variances are taken at the
// window's pooled P, never at an interval's own (weights that follow an interval's own
// estimate count its worst intervals least), and the window uses the more precise of
// the two estimates for every interval (medians: the medians').
func rankPoints(ivs []interval) (ps []point, medians bool) {
	ps = make([]point, len(ivs))
	var u, pairs float64
	for i, iv := range ivs {
		ps[i] = iv.p
		if iv.sigma > 0 {
			u, pairs = u+iv.u, pairs+float64(iv.nb*iv.nc)
		}
	}
	if pairs == 0 {
		return ps, false
	}
	pool := (u + 0.5) / (pairs + 1)
	z := distuv.UnitNormal.Quantile(pool)
	slope := distuv.UnitNormal.Prob(z)
	vars := func(iv interval) (vRanks, vMed float64) {
		m, n, s2 := float64(iv.nb), float64(iv.nc), iv.sigma*iv.sigma
		d := iv.sigma * math.Sqrt2 * z
		v0 := nullVar(iv.sigma, m, n)
		vRanks = math.Max(v0, 2*s2*ranksVar(pool, n, m)/(slope*slope)+d*d*spreadVar(m, n))
		return vRanks, math.Pi / 2 * s2 * (1/m + 1/n)
	}
	var wRanks, wMed float64
	for _, iv := range ivs {
		if iv.sigma > 0 {
			vr, vm := vars(iv)
			wRanks, wMed = wRanks+1/vr, wMed+1/vm
		}
	}
	for i, iv := range ivs {
		if iv.sigma <= 0 {
			continue
		}
		vr, vm := vars(iv)
		d, v := ps[i].d, vr
		scale := 1.0
		if !iv.log {
			scale = relScale(iv.medB)
			v /= scale * scale
		}
		if wMed > wRanks {
			d, v = iv.medC-iv.medB, vm
			if iv.log {
				d = math.Log(iv.medC / iv.medB)
			}
			d, v = d/scale, v/(scale*scale)
		}
		ps[i] = point{d: d, v: v}
	}
	return ps, wMed > wRanks
}

// nullVar is the variance of an interval's effect under no change: P's, (m+n+1)/(12mn),
// times the transform's squared slope at P = 1/2, 2σ²·2π.
func nullVar(sigma, m, n float64) float64 {
	return 2 * sigma * sigma * (m + n + 1) / (12 * m * n) * 2 * math.Pi
}

// ranksVar is the variance of P, the share of (canary, baseline) pairs where the canary
// is larger, at P itself, with nc canary and nb baseline values (Hanley & McNeil 1982);
// (nb+nc+1)/(12·nb·nc) at P = 1/2.
func ranksVar(p, nc, nb float64) float64 {
	q1, q2 := p/(2-p), 2*p*p/(1+p)
	return (p*(1-p) + (nc-1)*(q1-p*p) + (nb-1)*(q2-p*p)) / (nc * nb)
}

// spreadVar is the relative variance of the spread (the mean of both sides' interquartile
// ranges over 1.349) for a normal sample: 1.36/n a side, quartered for the mean of two.
func spreadVar(m, n float64) float64 { return 1.36 / 4 * (1/m + 1/n) }

// mannWhitneyU counts the (baseline, canary) pairs where the canary value is larger,
// ties counting 1/2, from the sorted keys of both sides: the mean of the pairs where the
// baseline is smaller and those where it is not larger, each counted by a merge without
// branches that depend on the data. The first merge meets every tie (a canary key is
// compared with the first baseline key not below it), so without ties the second count
// is the first and is not merged again.
func mannWhitneyU(b, c []uint64) float64 {
	below, tied := pairsBelow(b, c, 0)
	if !tied {
		return float64(below)
	}
	belowOrEqual, _ := pairsBelow(b, c, 1)
	return float64(below+belowOrEqual) / 2
}

// pairsBelow counts the pairs with b < c (orEqual 0) or b <= c (orEqual 1), and tells
// whether it compared equal keys. No key of a finite value is the largest uint64, so
// c+1 does not wrap.
func pairsBelow(b, c []uint64, orEqual uint64) (int, bool) {
	sum, i, j, eq := 0, 0, 0, 0
	for i < len(b) && j < len(c) {
		step := 0
		if b[i] < c[j]+orEqual {
			step = 1
		}
		if b[i] == c[j] {
			eq = 1
		}
		i += step
		sum += (1 - step) * i
		j += 1 - step
	}
	return sum + (len(c)-j)*i, eq != 0
}

// relScale is the scale of a difference relative to a level (1 when the level is 0).
func relScale(level float64) float64 {
	if s := math.Abs(level); s > 0 {
		return s
	}
	return 1
}
