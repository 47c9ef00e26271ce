package judge

import (
	"math"
	"slices"
)

// Sorting an interval's per-request samples is most of the judge's work (ranks, medians,
// quartiles). Samples are sorted exactly, as slices.Sort would, but faster: each finite
// value becomes a uint64 key that orders as the value does (sign bit flipped for
// positive values, all bits for negative ones; -0 taken as 0, as == takes it), one
// counting pass puts the keys in buckets by their offset from the smallest key, and each
// bucket is sorted on its own. The bits of a float grow almost as its logarithm, so
// latencies spread over the buckets as their logs do and most buckets hold a few keys;
// a bucket that holds many (one far outlier stretching the range) is sorted by
// slices.Sort, so no sample sorts in worse than n log n.

// scratch is the room one goroutine reuses to rank intervals: each side's sorted keys,
// and what sorting them needs.
type scratch struct {
	b, c, tmp []uint64
	count     []int32
}

// sorted returns the keys of the finite values of xs in increasing order, in room.
func (sc *scratch) sorted(room []uint64, xs []float64) []uint64 {
	keys := room[:0]
	for _, x := range xs {
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			keys = append(keys, orderKey(x))
		}
	}
	if cap(sc.tmp) < len(keys) {
		sc.tmp = make([]uint64, len(keys))
	}
	tmp := sc.tmp[:len(keys)]
	if sortKeys(keys, tmp, &sc.count) {
		// The sorted keys are in tmp: room becomes the next sort's tmp.
		sc.tmp, keys = keys, tmp
	}
	return keys
}

// medianKey is the median value of sorted keys.
func medianKey(ks []uint64) float64 {
	n := len(ks)
	if n%2 == 1 {
		return keyValue(ks[n/2])
	}
	return (keyValue(ks[n/2-1]) + keyValue(ks[n/2])) / 2
}

// orderKey maps a finite value to a key that sorts as the value does.
func orderKey(x float64) uint64 {
	if x == 0 {
		x = 0 // -0 == 0
	}
	b := math.Float64bits(x)
	if b>>63 != 0 {
		return ^b
	}
	return b | 1<<63
}

// keyValue is the value of a key (orderKey's inverse).
func keyValue(k uint64) float64 {
	if k>>63 != 0 {
		return math.Float64frombits(k &^ (1 << 63))
	}
	return math.Float64frombits(^k)
}

// maxInsertion is the largest bucket sorted by insertion.
const maxInsertion = 16

// sortKeys sorts keys into ascending order, with tmp (as long as keys) and count as
// room. It tells whether the sorted keys are in tmp (else in keys).
func sortKeys(keys, tmp []uint64, count *[]int32) bool {
	n := len(keys)
	if n < 2*maxInsertion {
		insertion(keys)
		return false
	}
	lo, hi := keys[0], keys[0]
	for _, k := range keys {
		lo, hi = min(lo, k), max(hi, k)
	}
	if lo == hi {
		return false
	}
	buckets := n / 2
	shift := 0
	for (hi-lo)>>shift >= uint64(buckets) {
		shift++
	}
	if cap(*count) < buckets+1 {
		*count = make([]int32, buckets+1)
	}
	start := (*count)[:buckets+1]
	clear(start)
	for _, k := range keys {
		start[(k-lo)>>shift+1]++
	}
	for i := 1; i <= buckets; i++ {
		start[i] += start[i-1]
	}
	// start[b] is where bucket b begins; filling moves it to where the next one begins.
	for _, k := range keys {
		b := (k - lo) >> shift
		tmp[start[b]] = k
		start[b]++
	}
	from := int32(0)
	for b := range buckets {
		part := tmp[from:start[b]]
		if len(part) > maxInsertion {
			slices.Sort(part)
		} else {
			insertion(part)
		}
		from = start[b]
	}
	return true
}

func insertion(ks []uint64) {
	for i := 1; i < len(ks); i++ {
		k, j := ks[i], i
		for ; j > 0 && ks[j-1] > k; j-- {
			ks[j] = ks[j-1]
		}
		ks[j] = k
	}
}
