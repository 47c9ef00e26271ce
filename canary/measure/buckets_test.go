package measure

import (
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSamplesSpreadInsideBuckets(t *testing.T) {
	before := []Bucket{{0.1, 5}, {0.2, 5}, {math.Inf(1), 5}}
	now := []Bucket{{0.2, 9}, {0.1, 7}, {math.Inf(1), 10}} // 2 in (0,0.1], 2 in (0.1,0.2], 1 above
	got := Samples(before, now)
	want := []float64{0.025, 0.075, 0.125, 0.175, 0.2}
	if d := cmp.Diff(want, got, cmp.Comparer(func(a, b float64) bool { return math.Abs(a-b) < 1e-9 })); d != "" {
		t.Fatalf("Samples (-want +got):\n%s", d)
	}
}

func TestSamplesCounterReset(t *testing.T) {
	before := []Bucket{{1, 100}, {math.Inf(1), 100}}
	now := []Bucket{{1, 3}, {math.Inf(1), 3}}
	if got := Samples(before, now); len(got) != 3 {
		t.Fatalf("after a reset got %d samples, want the 3 current ones", len(got))
	}
}

func TestSamplesCapped(t *testing.T) {
	now := []Bucket{{1, 3000}, {2, 4000}, {math.Inf(1), 4000}}
	got := Samples(nil, now)
	if len(got) != MaxSamples {
		t.Fatalf("got %d samples, want the cap %d", len(got), MaxSamples)
	}
	below := 0
	for _, v := range got {
		if v <= 1 {
			below++
		}
	}
	if below != 1500 {
		t.Fatalf("%d samples below 1, want 1500 (3/4 of the cap)", below)
	}
}

func TestQuantile(t *testing.T) {
	delta := []Bucket{{0.1, 50}, {0.2, 50}, {math.Inf(1), 0}}
	if q, ok := Quantile(delta, 0.5); !ok || math.Abs(q-0.1) > 1e-9 {
		t.Fatalf("median = %v, %v; want 0.1", q, ok)
	}
	if q, _ := Quantile(delta, 0.75); math.Abs(q-0.15) > 1e-9 {
		t.Fatalf("p75 = %v, want 0.15", q)
	}
	if _, ok := Quantile([]Bucket{{1, 0}}, 0.5); ok {
		t.Fatal("quantile of nothing")
	}
}
