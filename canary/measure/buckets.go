package measure

import (
	"math"
	"sort"
)

// Bucket is one cumulative histogram bucket: Count observations were <= Upper.
type Bucket struct {
	Upper float64
	Count float64
}

// MaxSamples caps the samples reconstructed from one histogram delta, so a busy host
// does not hand the judge millions of values; above it the counts are scaled down
// evenly, which keeps the shape of the distribution.
const MaxSamples = 2000

// Samples reconstructs per-request values from the observations that fell into each
// bucket between two scrapes (delta = now - before, both cumulative, any order). The k
// observations of a bucket (lo, hi] are spread evenly inside it, at
// lo + (i+0.5)(hi-lo)/k, which is the assumption histogram_quantile makes; observations
// in the +Inf bucket are put at the largest finite bound. Negative deltas (a counter
// reset) read the current counts as the delta.
func Samples(before, now []Bucket) []float64 {
	delta := Delta(before, now)
	total := 0.0
	for _, b := range delta {
		total += b.Count
	}
	scale := 1.0
	if total > MaxSamples {
		scale = MaxSamples / total
	}
	var out []float64
	lo := 0.0
	for _, b := range delta {
		k := int(math.Round(b.Count * scale))
		hi := b.Upper
		if math.IsInf(hi, 1) {
			hi = lo
		}
		for i := range k {
			out = append(out, lo+(float64(i)+0.5)*(hi-lo)/float64(k))
		}
		lo = hi
	}
	return out
}

// Delta turns two cumulative histograms into per-bucket (non-cumulative) counts of the
// observations made between them, sorted by bound.
func Delta(before, now []Bucket) []Bucket {
	prev := map[float64]float64{}
	for _, b := range before {
		prev[b.Upper] = b.Count
	}
	cur := append([]Bucket(nil), now...)
	sort.Slice(cur, func(i, j int) bool { return cur[i].Upper < cur[j].Upper })
	reset := false
	for _, b := range cur {
		if b.Count < prev[b.Upper] {
			reset = true
		}
	}
	out := make([]Bucket, len(cur))
	below := 0.0
	for i, b := range cur {
		c := b.Count
		if !reset {
			c -= prev[b.Upper]
		}
		out[i] = Bucket{Upper: b.Upper, Count: math.Max(0, c-below)}
		below = c
	}
	return out
}

// Quantile estimates the q-quantile of the observations in per-bucket counts (as Delta
// returns them), interpolating linearly inside the bucket as histogram_quantile does.
// ok is false when there are no observations.
func Quantile(delta []Bucket, q float64) (float64, bool) {
	total := 0.0
	for _, b := range delta {
		total += b.Count
	}
	if total == 0 {
		return 0, false
	}
	rank, below, lo := q*total, 0.0, 0.0
	for _, b := range delta {
		hi := b.Upper
		if math.IsInf(hi, 1) {
			return lo, true
		}
		if below+b.Count >= rank && b.Count > 0 {
			return lo + (hi-lo)*(rank-below)/b.Count, true
		}
		below += b.Count
		lo = hi
	}
	return lo, true
}
