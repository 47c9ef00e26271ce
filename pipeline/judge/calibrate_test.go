package judge

import (
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
)

// Replaying the A/A windows measures how far the model's intervals are from the data's:
// counts that vary as independent events do need no inflation; counts in bursts too
// small and too sparse for the burst check to see (a few requests an interval, most of
// their errors in bursts) need their intervals widened, and the calibration says by how
// much.
func TestCalibrationReplayInflatesWhatTheModelMisses(t *testing.T) {
	t.Parallel()
	ms := []Metric{{Name: "errors", Kind: Rate, Direction: Increase, AllowedEffect: 0.2, Critical: true}}
	side := func(rng *rand.Rand, n, p float64, bursty bool) Data {
		x := binomial(rng, n, p)
		if bursty && rng.Float64() < 0.05 {
			x = math.Min(n, x+poisson(rng, 3))
		}
		return Data{Events: x, Trials: n}
	}
	aa := func(seed uint64, n, p float64, bursty bool) [][]Input {
		rng := rand.New(rand.NewPCG(seed, 1))
		var ws [][]Input
		for range 200 {
			var w []Input
			for range 30 {
				w = append(w, Input{Baseline: map[string]Data{"errors": side(rng, n, p, bursty)},
					Canary: map[string]Data{"errors": side(rng, n, p, bursty)}})
			}
			ws = append(ws, w)
		}
		return ws
	}
	plain, err := Calibrate(ms, aa(1, 2000, 0.01, false))
	if err != nil {
		t.Fatal(err)
	}
	if f := plain["errors"].Inflation; f > 1.1 {
		t.Errorf("independent errors: inflation %v, want none (at most 1.1)", f)
	}
	bursty, err := Calibrate(ms, aa(2, 20, 0.005, true))
	if err != nil {
		t.Fatal(err)
	}
	if f := bursty["errors"].Inflation; f < 1.05 {
		t.Errorf("errors mostly in bursts of a few requests an interval: inflation %v (dispersion %v), want more than 1.05",
			f, bursty["errors"].Dispersion)
	}
	// On other A/A windows of the same kind, judged look by look at a 5% level, the
	// inflation keeps the false alarms near the level; without it they are more.
	fails := func(a Allowance) int {
		m := ms[0]
		m.Allowance = a
		n := 0
		for _, w := range aa(9, 20, 0.005, true) {
			s := NewSequence([]Metric{m}, Options{Looks: 30, Alpha: 0.05})
			for k, in := range w {
				if v := s.Look(in, k == len(w)-1); v.Outcome == Fail {
					n++
					break
				}
			}
		}
		return n
	}
	without := bursty["errors"]
	without.Inflation = 0
	with, wo := fails(bursty["errors"]), fails(without)
	t.Logf("A/A windows failed at a 5%% level: %d of 200 with the inflation, %d without", with, wo)
	if with > 15 || with >= wo {
		t.Errorf("A/A windows failed at a 5%% level: %d of 200 with the inflation, %d without; want at most 15 and fewer", with, wo)
	}

	// The inflation widens what the judge concludes: the same counts, the same test,
	// an interval about that many times wider on the log scale.
	k := counts{xb: 40, nb: 10000, xc: 60, nc: 10000}
	m := ms[0]
	narrow, _ := tested(m, k, bursts{phi: 1})
	m.Allowance = Allowance{Inflation: 2}
	wide, phi := tested(m, k, bursts{phi: 1})
	if phi != 4 || wide.xc != narrow.xc/4 || wide.nb != narrow.nb/4 {
		t.Errorf("inflation 2: got φ %v and counts %+v from %+v, want each event weighed as a quarter", phi, wide, narrow)
	}
}

// Half the intervals far from the other half: which half is the burst is a guess, so
// none is left out. Before, the tighter half was taken for the bulk and the other left
// out, and a canary worse for half the window read as worse by the burst's size with
// the interval of the tight half alone.
func TestHalfTheWindowIsNoBurst(t *testing.T) {
	t.Parallel()
	var ps []point
	rng := rand.New(rand.NewPCG(3, 3))
	for i := range 8 {
		d := 0.02 * rng.NormFloat64()
		if i >= 4 {
			d = 0.6 // a step, exactly level
		}
		ps = append(ps, point{d: d})
	}
	a := Allowance{Noise: 0.02, Windows: 20}
	e := combine(ps, a)
	if e.bursts != 0 || e.k != 8 {
		t.Errorf("4 of 8 intervals apart: %d left out as bursts, %d used; want none left out", e.bursts, e.k)
	}
	// Three of eight are a minority: left out.
	ps[4].d = 0.01
	if e := combine(ps, a); e.bursts != 3 {
		t.Errorf("3 of 8 intervals apart: %d left out as bursts, want 3", e.bursts)
	}
}

// A rate is not flagged before MinIntervals intervals, as a value metric is not: a run of
// bursts on one side in the first intervals must not outvote the window.
func TestRatesWaitForMinIntervals(t *testing.T) {
	t.Parallel()
	s := NewSequence(simMetrics[:1], Options{Looks: 30})
	rng := rand.New(rand.NewPCG(5, 5))
	for k := 1; k <= 30; k++ {
		v := s.Look(rates(binomial(rng, 2000, 0.01), 2000, binomial(rng, 2000, 0.1), 2000), k == 30)
		if v.Stop() {
			if k != 8 {
				t.Errorf("errors ×10 in every interval: stopped at look %d, want 8 (the first look that may decide)", k)
			}
			return
		}
		if k < 8 && v.Metrics[0].Reason != "too early to decide (look "+itoa(k)+" of 30)" {
			t.Errorf("look %d: reason %q", k, v.Metrics[0].Reason)
		}
	}
	t.Error("errors ×10 in every interval: never stopped")
}

// Looks that cannot decide spend nothing: the level's whole alpha is spent over the looks
// from MinIntervals on, by the plan's spending function over those looks.
func TestEarlyLooksSpendNothing(t *testing.T) {
	t.Parallel()
	ms := simMetrics[:1]
	s := NewSequence(ms, Options{Looks: 30})
	a := s.level(ms[0])
	for k := 1; k <= 30; k++ {
		s.look = k
		lv := s.levels(k == 30)[a]
		b := s.bounds[a]
		switch {
		case k < 8 && (lv.decide != 0 || b.spent != 0):
			t.Errorf("look %d: decides at %v, spent %v; want nothing", k, lv.decide, b.spent)
		case k == 8:
			want := a * (1 - math.Exp(2.0/23)) / (1 - math.Exp(2))
			if math.Abs(b.spent-want) > 1e-3*want {
				t.Errorf("look 8: spent %v, want %v (hsd:-2 at 1/23 of the deciding looks)", b.spent, want)
			}
		case k == 30 && math.Abs(b.spent-a) > 1e-3*a:
			t.Errorf("final look: spent %v of %v", b.spent, a)
		}
	}
}

func itoa(k int) string { return strconv.Itoa(k) }

// A share whose warm-up intervals hold fewer hits is noisier there; a small drift of
// each host's hit ratio is still found beside it. Clipped at one scale for all
// intervals, the noisy warm-up's differences were cut more than the rest, and the drift
// was taken for nothing.
func TestCalibrationFindsADriftBesideANoisyWarmUp(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(6, 6))
	var ws [][]Input
	for range 300 {
		var w []Input
		drift := [2]float64{rng.NormFloat64(), rng.NormFloat64()}
		for i := range 30 {
			in := Input{Baseline: map[string]Data{}, Canary: map[string]Data{}}
			miss := 0.1 * math.Pow(1+0.5*math.Exp(-float64(i)/3), 2)
			for s, side := range []map[string]Data{in.Baseline, in.Canary} {
				drift[s] = 0.7*drift[s] + math.Sqrt(1-0.49)*rng.NormFloat64()
				p := (1 - miss) * math.Exp(0.0012*drift[s])
				side["hit"] = Data{Events: binomial(rng, 2000, p), Trials: 2000}
			}
			w = append(w, in)
		}
		ws = append(ws, w)
	}
	allow, err := Calibrate(hitRatio, ws)
	if err != nil {
		t.Fatal(err)
	}
	a := allow["hit"]
	t.Logf("calibrated %+v", a)
	// Each side drifts with sd 0.12%, so their log ratio with 0.12%·√2 = 0.17%.
	if total := math.Hypot(math.Hypot(a.Noise, a.Drift), a.Offset); total < 0.0013 || total > 0.0022 {
		t.Errorf("calibrated %+v: want noise, drift and offset together near 0.17%%", a)
	}
}
