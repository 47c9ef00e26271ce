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
// is that of P under no change, (m+n+1)/(12mn), times (dδ/dP)² at P = 1/2. σ is the interval's log-spread (the
// interquartile range of the logs over 1.349, averaged over both sides). The transform
// only sets the scale of the effect: whether it is significant rests on the ranks.

// minPerSide is the fewest requests a side needs for an interval to count.
const minPerSide = 2

// interval summarizes one interval of per-request samples: its point, and each side's
// median and count for the explanation.
type interval struct {
	p          point
	ok, log    bool // ok: the interval counts; log: p is on the log scale
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
	p := (mannWhitneyU(b, c) + 0.5) / (m*n + 1)
	d := sigma * math.Sqrt2 * distuv.UnitNormal.Quantile(p)
	// The variance is P's under no change, mapped at P = 1/2: the transform is a scale,
	// and the evidence stays the ranks'. (Mapped at P itself, a complete separation, the
	// strongest evidence, would get the widest interval.) What a real shift adds to the
	// spread of the intervals' d, the combination measures from their scatter.
	v := 2 * sigma * sigma * (m + n + 1) / (12 * m * n) * 2 * math.Pi
	if !logScale {
		s := relScale(out.medB)
		d, v = d/s, v/(s*s)
	}
	out.p, out.ok = point{d: d, v: v}, true
	return out
}

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
