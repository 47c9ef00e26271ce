package judge

import (
	"math"
	"slices"
	"sync"
)

// radixBufs keeps the sort's key buffers between calls: judging allocates nothing else
// of that size.
var radixBufs = sync.Pool{New: func() any { return new([2][]uint64) }}

// sortFloats sorts xs (no NaNs) ascending: an LSD radix sort on the float's bits for
// large samples, about three times faster than a comparison sort there, which keeps
// judging 100 metrics of 10,000 samples within its budget.
func sortFloats(xs []float64) {
	if len(xs) < 1024 {
		slices.Sort(xs)
		return
	}
	const bits, passes = 11, 6 // 66 bits cover a uint64
	bufs := radixBufs.Get().(*[2][]uint64)
	defer radixBufs.Put(bufs)
	for i := range bufs {
		if cap(bufs[i]) < len(xs) {
			bufs[i] = make([]uint64, len(xs))
		}
	}
	keys, tmp := bufs[0][:len(xs)], bufs[1][:len(xs)]
	var hist [passes][1 << bits]int
	for i, x := range xs {
		k := math.Float64bits(x)
		if k>>63 == 1 {
			k = ^k // negative: reverse their order below the positives
		} else {
			k |= 1 << 63
		}
		keys[i] = k
		for p := range passes {
			hist[p][(k>>(p*bits))&(1<<bits-1)]++
		}
	}
	for p := range passes {
		h := &hist[p]
		if h[(keys[0]>>(p*bits))&(1<<bits-1)] == len(keys) {
			continue // every key has the same digit here
		}
		sum := 0
		for d, n := range h {
			h[d], sum = sum, sum+n
		}
		for _, k := range keys {
			d := (k >> (p * bits)) & (1<<bits - 1)
			tmp[h[d]] = k
			h[d]++
		}
		keys, tmp = tmp, keys
	}
	for i, k := range keys {
		if k>>63 == 1 {
			k &^= 1 << 63
		} else {
			k = ^k
		}
		xs[i] = math.Float64frombits(k)
	}
}
