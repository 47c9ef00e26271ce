package main

import (
	"math"
	"slices"

	"gonum.org/v1/gonum/stat/distuv"

	"github.com/immunity-app/immunity/pipeline/judge"
)

// Kayenta's NetflixACAJudge, as published (kayenta-judge: NetflixACAJudge,
// MannWhitneyClassifier(tolerance = 0.25, confLevel = 0.98), WeightedSumScorer,
// ThresholdScoreClassifier), run on the same corpus:
//
//   - every metric is a time series, one value per interval (a rate is the interval's
//     events/trials, NaN without trials); NaNs are removed, then outliers beyond 3 IQR
//     (IQRDetector factor 3; with a zero IQR nothing is removed);
//   - no data → Nodata (left out of the score); identical data → Pass;
//   - Mann-Whitney with the 98% confidence interval of the location shift and the
//     Hodges-Lehmann estimate, as R's wilcox.test computes them with the normal
//     approximation and continuity correction (Kayenta's MannWhitney port);
//   - High when the interval's lower end exceeds 0.25·|estimate| (direction increase or
//     either), Low when its upper end is below -0.25·|estimate| (decrease or either);
//   - score = 100 · passing / judged; a critical metric High/Low fails the canary;
//     otherwise score ≥ 95 pass, ≥ 75 marginal, below fail;
//   - interim: the canary stage stops with a failure at any look whose score is at or
//     below the marginal threshold (75), as Spinnaker's canary stage does; the final
//     look's Marginal is not a Pass (bench/judge counts it as a failure).
//
// Kayenta reads per-interval series from a time-series database: latency is each
// interval's mean request latency, a rate each interval's events/trials.
type kayenta struct{}

type kClass int

const (
	kPass kClass = iota
	kHigh
	kLow
	kNodata
)

// look is Kayenta's score on the data so far, and whether a critical metric failed.
func (kayenta) look(base, can []sample) (criticalFail bool, score float64) {
	pass, judged := 0.0, 0.0
	for _, m := range metrics {
		c := kayentaClassify(series(base, m), series(can, m), m.Direction)
		if c == kNodata {
			continue
		}
		judged++
		if c == kPass {
			pass++
		} else if m.Critical {
			return true, 0
		}
	}
	if judged == 0 {
		return false, 100
	}
	return false, 100 * pass / judged
}

// stopsAt is the look at which Kayenta fails the window (0: it does not): an interim look
// from firstLook on that fails a critical metric or scores 75 or less, or a final score
// below 95 (Marginal or Fail).
func (k kayenta) stopsAt(base, can []sample) (at, looks int) {
	for n := firstLook; n <= intervals; n++ {
		looks++
		crit, score := k.look(base[:n], can[:n])
		if crit || score <= 75 || (n == intervals && score < 95) {
			if *explain {
				for _, m := range metrics {
					if c := kayentaClassify(series(base[:n], m), series(can[:n], m), m.Direction); c == kHigh || c == kLow {
						kayentaFlags[m.Name]++
					}
				}
			}
			return n, looks
		}
	}
	return 0, looks
}

var kayentaFlags = map[string]int{}

// series is a metric's per-interval values.
func series(ivs []sample, m judge.Metric) []float64 {
	out := make([]float64, 0, len(ivs))
	for _, iv := range ivs {
		switch m.Name {
		case "error_rate":
			out = append(out, iv.errors/iv.requests) // NaN without requests
		case "timeout_rate":
			out = append(out, iv.timeouts/iv.requests)
		case "latency":
			sum := 0.0
			for _, x := range iv.latencies {
				sum += x
			}
			out = append(out, sum/float64(len(iv.latencies)))
		default:
			if v, ok := iv.values[m.Name]; ok {
				out = append(out, v)
			}
		}
	}
	return out
}

func kayentaClassify(control, experiment []float64, dir judge.Direction) kClass {
	control, experiment = transform(control), transform(experiment)
	if len(control) == 0 || len(experiment) == 0 {
		return kNodata
	}
	if slices.Equal(sorted(control), sorted(experiment)) {
		return kPass
	}
	all := append(slices.Clone(control), experiment...)
	if slices.Min(all) == slices.Max(all) {
		return kPass
	}
	zq := distuv.UnitNormal.Quantile(1 - (1-*kayentaConf)/2)
	experiment, control = sorted(experiment), sorted(control)
	est, ok1 := wilcoxRoot(experiment, control, 0)
	lo, ok2 := wilcoxRoot(experiment, control, zq)
	hi, ok3 := wilcoxRoot(experiment, control, -zq)
	if !ok1 || !ok2 || !ok3 {
		return kNodata // Kayenta's root finder throws; we leave the metric out
	}
	crit := 0.25 * math.Abs(est)
	switch {
	case dir != judge.Decrease && lo > crit:
		return kHigh
	case (dir == judge.Decrease || dir == judge.Either) && hi < -crit:
		return kLow
	}
	return kPass
}

// transform removes NaNs, then outliers beyond 3 interquartile ranges.
func transform(xs []float64) []float64 {
	out := make([]float64, 0, len(xs))
	for _, x := range xs {
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			out = append(out, x)
		}
	}
	if len(out) < 4 {
		return out
	}
	s := sorted(out)
	q1, q3 := quantile(s, 0.25), quantile(s, 0.75)
	iqr := q3 - q1
	if iqr == 0 {
		return out
	}
	kept := out[:0]
	for _, x := range out {
		if x >= q1-3*iqr && x <= q3+3*iqr {
			kept = append(kept, x)
		}
	}
	return kept
}

func sorted(xs []float64) []float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s
}

// quantile interpolates linearly between order statistics (R type 7).
func quantile(s []float64, p float64) float64 {
	h := p * float64(len(s)-1)
	i := int(h)
	if i+1 >= len(s) {
		return s[len(s)-1]
	}
	return s[i] + (h-float64(i))*(s[i+1]-s[i])
}

// wilcoxZ is R's asymptotic Wilcoxon statistic of x - mu against y (both sorted): the
// rank sum with average ranks for ties, the tie-corrected variance and the continuity
// correction. It walks both samples once in merged order; tiesXY is the tie term of x
// and y on their own.
func wilcoxZ(x, y []float64, mu, tiesXY float64) float64 {
	nx, ny := float64(len(x)), float64(len(y))
	u, ties := 0.0, tiesXY
	j := 0
	for i := 0; i < len(x); {
		v := x[i] - mu
		i2 := i + 1
		for i2 < len(x) && x[i2] == x[i] {
			i2++
		}
		for j < len(y) && y[j] < v {
			j++
		}
		j2 := j
		for j2 < len(y) && y[j2] == v {
			j2++
		}
		tx, ty := float64(i2-i), float64(j2-j)
		u += tx * (float64(j) + ty/2)
		if ty > 0 {
			t := tx + ty
			ties += t*t*t - t - (tx*tx*tx - tx) - (ty*ty*ty - ty)
		}
		i = i2
	}
	dz := u - nx*ny/2
	corr := 0.0
	if dz > 0 {
		corr = 0.5
	} else if dz < 0 {
		corr = -0.5
	}
	n := nx + ny
	sigma := math.Sqrt(nx * ny / 12 * ((n + 1) - ties/(n*(n-1))))
	if sigma == 0 {
		return 0
	}
	return (dz - corr) / sigma
}

func tieSum(s []float64) float64 {
	sum := 0.0
	for i := 0; i < len(s); {
		k := i + 1
		for k < len(s) && s[k] == s[i] {
			k++
		}
		t := float64(k - i)
		sum += t*t*t - t
		i = k
	}
	return sum
}

// wilcoxRoot solves wilcoxZ(x, y, mu) = zq for mu by bisection over R's range; false
// when the range does not bracket a root (R's uniroot and Kayenta's solver fail there:
// with one value a side, or a 98% interval wider than the data allows).
func wilcoxRoot(x, y []float64, zq float64) (float64, bool) {
	lo := x[0] - y[len(y)-1]
	hi := x[len(x)-1] - y[0]
	ties := tieSum(x) + tieSum(y)
	if !(wilcoxZ(x, y, lo, ties) >= zq && wilcoxZ(x, y, hi, ties) <= zq) {
		return 0, false
	}
	for range 32 {
		mid := (lo + hi) / 2
		if wilcoxZ(x, y, mid, ties) > zq {
			lo = mid
		} else {
			hi = mid
		}
	}
	// z jumps at the pairwise differences; a root at a jump is that difference exactly
	// (with zeros in both series, 0), not a point a rounding error away from it.
	for _, a := range x {
		for _, b := range y {
			if d := a - b; d >= lo && d <= hi {
				return d, true
			}
		}
	}
	return (lo + hi) / 2, true
}
