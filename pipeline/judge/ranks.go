package judge

import "math"

// ranks holds two sorted samples for the Mann-Whitney test and the Hodges-Lehmann
// estimate. Gonum has no rank-sum test, so it is written here; the normal distribution
// comes from gonum's distuv.
//
// A shift is applied to the canary before comparing: scale "ratio" divides every canary
// value by the shift (for positive data such as latencies, the effect is a ratio),
// scale "diff" subtracts it.
type ranks struct {
	b, c         []float64 // sorted baseline and canary
	ratio        bool      // multiplicative model (all values > 0)
	tiesB, tiesC float64   // tieSum of each sample
	bInf         []float64 // b with a +Inf sentinel, for countLess
}

func newRanks(baseline, canary []float64) ranks {
	b, c := clean(baseline), clean(canary)
	sortFloats(b)
	sortFloats(c)
	bInf := append(b, math.Inf(1)) // clean left room for it
	r := ranks{b: bInf[:len(b)], c: c, tiesB: tieSum(b), tiesC: tieSum(c), bInf: bInf}
	r.ratio = len(b) > 0 && len(c) > 0 && b[0] > 0 && c[0] > 0
	return r
}

// clean copies xs without NaN or infinite values (with room for one more).
func clean(xs []float64) []float64 {
	out := make([]float64, 0, len(xs)+1)
	for _, x := range xs {
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			out = append(out, x)
		}
	}
	return out
}

// neutral is the shift meaning "no change": 1 for ratios, 0 for differences.
func (r ranks) neutral() float64 {
	if r.ratio {
		return 1
	}
	return 0
}

// z is the Mann-Whitney statistic of canary (shifted by s) against baseline, standardized
// with the tie-corrected variance and a continuity correction, as R's wilcox.test does.
// Positive z: the shifted canary is larger. It is nonincreasing in s.
func (r ranks) z(s float64) float64 {
	n, m := float64(len(r.c)), float64(len(r.b))
	lt, tie := r.countLess(s)
	u, ties := float64(lt), r.tiesB+r.tiesC
	if tie {
		u, ties = r.count(s)
	}
	N := n + m
	v := n * m / 12 * ((N + 1) - ties/(N*(N-1)))
	if v <= 0 {
		return 0
	}
	d := u - n*m/2
	switch {
	case d > 0.5:
		d -= 0.5
	case d < -0.5:
		d += 0.5
	default:
		d = 0
	}
	return d / math.Sqrt(v)
}

// count walks both sorted samples once in merged order. u is the number of
// (canary, baseline) pairs where the shifted canary value is larger (ties count 1/2);
// ties is the sum of t³-t over groups of equal values in the combined sample.
func (r ranks) count(s float64) (u, ties float64) {
	b, c := r.b, r.c
	ties = r.tiesB + r.tiesC
	j := 0
	for i := 0; i < len(c); {
		x := r.shift(c[i], s)
		i2 := i + 1
		for i2 < len(c) && c[i2] == c[i] {
			i2++
		}
		for j < len(b) && b[j] < x {
			j++
		}
		j2 := j
		for j2 < len(b) && b[j2] == x {
			j2++
		}
		tc, tb := float64(i2-i), float64(j2-j)
		u += tc * (float64(j) + tb/2)
		if tb > 0 { // a group holding both samples
			t := tb + tc
			ties += t*t*t - t - (tb*tb*tb - tb) - (tc*tc*tc - tc)
		}
		i = i2
	}
	return u, ties
}

// countLess counts the (canary, baseline) pairs where the shifted canary value is
// larger, and reports whether any pair is equal (then count must do the work). This is
// where judging spends its time, so it is the merge of count written for the processor:
// no branch depends on the data, and the canary is cut into four parts merged side by
// side (each starting where a binary search puts it), so four independent chains of
// work overlap instead of one waiting on itself.
func (r ranks) countLess(s float64) (lt int, tie bool) {
	c, b := r.c, r.bInf
	if len(c) < 1024 {
		return r.chain(s, 0, len(c), 0)
	}
	q := len(c) / 4
	i0, i1, i2, i3 := 0, q, 2*q, 3*q
	e0, e1, e2, e3 := q, 2*q, 3*q, len(c)
	j0, j1, j2, j3 := 0, r.below(c[i1], s), r.below(c[i2], s), r.below(c[i3], s)
	steps := min(e0-i0+r.below(c[e0-1], s)-j0, e1-i1+r.below(c[e1-1], s)-j1,
		e2-i2+r.below(c[e2-1], s)-j2, e3-i3+r.below(c[e3-1], s)-j3)
	var n0, n1, n2, n3 int
	var t0, t1, t2, t3 bool
	for range steps {
		i0, j0, n0, t0 = r.step(c[i0], b[j0], s, i0, j0, n0, t0)
		i1, j1, n1, t1 = r.step(c[i1], b[j1], s, i1, j1, n1, t1)
		i2, j2, n2, t2 = r.step(c[i2], b[j2], s, i2, j2, n2, t2)
		i3, j3, n3, t3 = r.step(c[i3], b[j3], s, i3, j3, n3, t3)
	}
	lt, tie = n0+n1+n2+n3, t0 || t1 || t2 || t3
	for _, p := range [4][3]int{{i0, e0, j0}, {i1, e1, j1}, {i2, e2, j2}, {i3, e3, j3}} {
		rest, t := r.chain(s, p[0], p[1], p[2])
		lt, tie = lt+rest, tie || t
	}
	return lt, tie
}

// step is one step of a merge: take the baseline value y if it is below the canary
// value x (j moves on), else the canary value (i moves on, and the j baseline values
// below it are counted).
func (r ranks) step(x, y, s float64, i, j, n int, tie bool) (int, int, int, bool) {
	y = r.shiftB(y, s)
	adv := 0
	if y < x {
		adv = 1
	}
	j += adv
	return i + 1 - adv, j, n + (1-adv)*j, tie || y == x
}

// chain merges canary values c[i:end] from baseline position j.
func (r ranks) chain(s float64, i, end, j int) (lt int, tie bool) {
	b, c := r.bInf, r.c
	for i < end {
		i, j, lt, tie = r.step(c[i], b[j], s, i, j, lt, tie)
	}
	return lt, tie
}

// shiftB moves a baseline value by the shift, the other way round from shift: comparing
// b·s with c is comparing b with c/s, without a division.
func (r ranks) shiftB(y, s float64) float64 {
	if r.ratio {
		return y * s
	}
	return y + s
}

// below is how many baseline values, shifted by shiftB, are below x.
func (r ranks) below(x, s float64) int {
	lo, hi := 0, len(r.b)
	for lo < hi {
		mid := (lo + hi) / 2
		if r.shiftB(r.b[mid], s) < x {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo
}

// tieSum is the sum of t³-t over groups of equal values of a sorted sample.
func tieSum(xs []float64) float64 {
	sum := 0.0
	for i := 0; i < len(xs); {
		k := i + 1
		for k < len(xs) && xs[k] == xs[i] {
			k++
		}
		if t := float64(k - i); t > 1 {
			sum += t*t*t - t
		}
		i = k
	}
	return sum
}

func (r ranks) shift(x, s float64) float64 {
	if r.ratio {
		return x / s
	}
	return x - s
}

// solve finds the shift s where z(s) = target. It starts at guess, steps towards the
// root along slope (an estimate of dz/dx on the solver's line, negative) to bracket it,
// then narrows the bracket with the Illinois variant of regula falsi. z is a
// nonincreasing step function of s. It returns the root and the bracket's slope.
func (r ranks) solve(target, guess, slope float64) (root, slopeOut float64) {
	to, from := r.fromLine, r.toLine
	f := func(x float64) float64 { return r.z(to(x)) - target }
	minX, maxX := r.span()
	minX, maxX = from(minX), from(maxX)
	x0 := math.Min(math.Max(from(guess), minX), maxX)
	f0 := f(x0)
	lo, flo, hi, fhi := x0, f0, x0, f0
	step := 1.2*math.Abs(f0/slope) + 1e-9
	for fhi > 0 && hi < maxX { // z too high: the root is at larger shifts
		lo, flo = hi, fhi
		hi = math.Min(hi+step, maxX)
		fhi = f(hi)
		step *= 2
	}
	for flo < 0 && lo > minX {
		hi, fhi = lo, flo
		lo = math.Max(lo-step, minX)
		flo = f(lo)
		step *= 2
	}
	switch {
	case flo < 0: // z never reaches the target: the interval is unbounded below
		if r.ratio {
			return 0, slope
		}
		return math.Inf(-1), slope
	case fhi > 0:
		return math.Inf(1), slope
	case flo == 0:
		return to(lo), slope
	case fhi == 0:
		return to(hi), slope
	}
	if s := (fhi - flo) / (hi - lo); s < 0 && !math.IsInf(s, 0) {
		slope = s // over the first bracket: wide enough to smooth z's steps
	}
	side := 0
	tol := 1e-4 // on the log scale: a ratio to 0.01%
	if !r.ratio {
		tol *= r.scale()
	}
	prev := math.NaN()
	for it := 0; it < 50 && hi-lo > tol; it++ {
		x := (lo*fhi - hi*flo) / (fhi - flo)
		if !(x > lo && x < hi) {
			x = (lo + hi) / 2
		}
		if math.Abs(x-prev) < tol/4 {
			return to(x), slope // regula falsi has settled
		}
		if it == 0 && r.smooth() && math.Abs(flo) < 1.5 && math.Abs(fhi) < 1.5 {
			// Large samples: z is a straight line this close to the target, so the
			// first interpolation is as good as the tolerance.
			return to(x), slope
		}
		prev = x
		fx := f(x)
		switch {
		case fx == 0:
			return to(x), slope
		case fx > 0:
			lo, flo = x, fx
			if side == 1 {
				fhi /= 2
			}
			side = 1
		default:
			hi, fhi = x, fx
			if side == -1 {
				flo /= 2
			}
			side = -1
		}
	}
	return to((lo + hi) / 2), slope
}

// smooth reports whether both samples are large enough for z to be close to linear in
// the shift over a few standard errors, with steps far below the solver's tolerance.
func (r ranks) smooth() bool { return min(len(r.b), len(r.c)) >= 2000 }

// The solver works on a line where the shift model is additive: log s for ratios.
func (r ranks) toLine(s float64) float64 {
	if r.ratio {
		return math.Log(s)
	}
	return s
}

func (r ranks) fromLine(x float64) float64 {
	if r.ratio {
		return math.Exp(x)
	}
	return x
}

// scale is the spread of the values on the solver's line (the pooled interquartile
// range over 1.349, a standard deviation for normal data).
func (r ranks) scale() float64 {
	q := func(xs []float64, p float64) float64 { return r.toLine(xs[int(p*float64(len(xs)-1))]) }
	iqr := (q(r.b, 0.75) - q(r.b, 0.25) + q(r.c, 0.75) - q(r.c, 0.25)) / 2
	if r.ratio {
		return iqr / 1.349
	}
	return math.Max(iqr/1.349, 1e-12)
}

// estimate returns the Hodges-Lehmann shift and its interval at critical value zc.
func (r ranks) estimate(zc float64) (est, lo, hi float64) {
	se := r.scale() * 1.023 * math.Sqrt(1/float64(len(r.b))+1/float64(len(r.c)))
	lo, hi = r.span()
	se = math.Max(se, (r.toLine(hi)-r.toLine(lo))*1e-4) // heavy ties: no spread to go by
	guess := r.toLine(median(r.c)) - r.toLine(median(r.b))
	est, slope := r.solve(0, r.fromLine(guess), -1/se)
	x := r.toLine(est)
	lo, _ = r.solve(zc, r.fromLine(x+zc/slope), slope)
	hi, _ = r.solve(-zc, r.fromLine(x-zc/slope), slope)
	return est, lo, hi
}

// span is the range of shifts over which z goes from its maximum to its minimum.
func (r ranks) span() (lo, hi float64) {
	bmin, bmax := r.b[0], r.b[len(r.b)-1]
	cmin, cmax := r.c[0], r.c[len(r.c)-1]
	if r.ratio {
		return cmin / bmax * 0.999, cmax / bmin * 1.001
	}
	w := (cmax - cmin + bmax - bmin + 1e-12) * 1e-3
	return cmin - bmax - w, cmax - bmin + w
}

// median returns the median of a sorted sample.
func median(xs []float64) float64 {
	n := len(xs)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}
