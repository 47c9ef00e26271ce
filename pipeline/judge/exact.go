package judge

import (
	"math"
	"sync"
)

// Small samples: below 50 values a side and without ties, the Mann-Whitney interval is
// taken from the exact distribution of U, as R's wilcox.test does. The normal
// approximation is far too pessimistic in the extreme tails a sequential look needs: all
// 8 canary values above all 8 baseline values has exact probability 1/12870 = 7.8e-5,
// where the approximation says 4.7e-4.

const exactLimit = 50

// exactOK says whether the exact interval applies.
func (r ranks) exactOK() bool {
	return len(r.b) < exactLimit && len(r.c) < exactLimit && r.tiesB == 0 && r.tiesC == 0 && !r.crossTies()
}

func (r ranks) crossTies() bool {
	_, ties := r.count(r.neutral())
	return ties > 0
}

// exactEstimate returns the Hodges-Lehmann shift (the median of the pairwise shifts) and
// its interval with one-sided error a on each side; an end is unbounded (0 or ∓Inf, as
// solve) when no shift can be rejected at that level.
func (r ranks) exactEstimate(a float64) (est, lo, hi float64) {
	n, m := len(r.c), len(r.b)
	d := make([]float64, 0, n*m)
	for _, x := range r.c {
		for _, y := range r.b {
			if r.ratio {
				d = append(d, x/y)
			} else {
				d = append(d, x-y)
			}
		}
	}
	est = selectK(d, len(d)/2)
	if len(d)%2 == 0 {
		est = (est + selectK(d[:len(d)/2], len(d)/2-1)) / 2
	}
	cdf := wilcoxCDF(n, m)
	j := 0 // the lower bound is the j-th smallest, j-1 the largest c with P(U <= c) <= a
	for j < len(cdf) && cdf[j] <= a {
		j++
	}
	if j == 0 {
		lo, hi = math.Inf(-1), math.Inf(1)
		if r.ratio {
			lo = 0
		}
		return est, lo, hi
	}
	return est, selectK(d, j-1), selectK(d, len(d)-j)
}

// selectK returns the k-th smallest of xs (0-based), partly reordering xs: quickselect
// with a median-of-three pivot, linear time.
func selectK(xs []float64, k int) float64 {
	lo, hi := 0, len(xs)-1
	for lo < hi {
		mid := lo + (hi-lo)/2
		if xs[mid] < xs[lo] {
			xs[mid], xs[lo] = xs[lo], xs[mid]
		}
		if xs[hi] < xs[lo] {
			xs[hi], xs[lo] = xs[lo], xs[hi]
		}
		if xs[hi] < xs[mid] {
			xs[hi], xs[mid] = xs[mid], xs[hi]
		}
		pivot := xs[mid]
		i, j := lo, hi
		for i <= j {
			for xs[i] < pivot {
				i++
			}
			for xs[j] > pivot {
				j--
			}
			if i <= j {
				xs[i], xs[j] = xs[j], xs[i]
				i++
				j--
			}
		}
		switch {
		case k <= j:
			hi = j
		case k >= i:
			lo = i
		default:
			return xs[k]
		}
	}
	return xs[k]
}

var wilcoxCache = struct {
	sync.Mutex
	m map[[2]int][]float64
}{m: map[[2]int][]float64{}}

// wilcoxCDF is P(U <= u) for u = 0..n·m, U the Mann-Whitney statistic of samples of n
// and m values without ties, from its generating function
// Π_{i=1..n} (1 - q^(m+i)) / (1 - q^i).
func wilcoxCDF(n, m int) []float64 {
	key := [2]int{min(n, m), max(n, m)}
	wilcoxCache.Lock()
	defer wilcoxCache.Unlock()
	if c, ok := wilcoxCache.m[key]; ok {
		return c
	}
	n, m = key[0], key[1]
	c := make([]float64, n*m+1)
	c[0] = 1
	for i := 1; i <= n; i++ {
		for u := len(c) - 1; u >= m+i; u-- { // × (1 - q^(m+i))
			c[u] -= c[u-m-i]
		}
		for u := i; u < len(c); u++ { // ÷ (1 - q^i)
			c[u] += c[u-i]
		}
	}
	total := 0.0
	for _, x := range c {
		total += x
	}
	sum := 0.0
	for u, x := range c {
		sum += x
		c[u] = sum / total
	}
	wilcoxCache.m[key] = c
	return c
}
