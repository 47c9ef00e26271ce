package judge

import (
	"flag"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gonum.org/v1/gonum/stat/distuv"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// golden compares got with testdata/name (go test -update rewrites it).
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run go test -update to create it): %v", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", name, diff)
	}
}

func poisson(rng *rand.Rand, l float64) float64 {
	if l <= 0 {
		return 0
	}
	return distuv.Poisson{Lambda: l, Src: rng}.Rand()
}

func binomial(rng *rand.Rand, n, p float64) float64 {
	if n <= 0 || p <= 0 {
		return 0
	}
	return distuv.Binomial{N: n, P: p, Src: rng}.Rand()
}

// host is one side of a simulated window: its level of each metric, and its own slow
// drift (AR(1) across intervals, sd drift of the log level, correlation 0.7).
type host struct {
	errRate, latency, memory float64
	drift                    float64
	state                    float64
}

var simMetrics = []Metric{
	{Name: "errors", Kind: Rate, Direction: Increase, AllowedEffect: 0.2, Critical: true},
	{Name: "latency", Kind: Latency, Direction: Increase, AllowedEffect: 0.05, Critical: true, Unit: "s"},
	{Name: "memory", Kind: Gauge, Direction: Either, AllowedEffect: 0.1, Unit: "bytes"},
}

// simInterval is both hosts' measurements of one 10 s interval at rps requests a second.
func simInterval(rng *rand.Rand, b, c *host, rps float64) Input {
	in := Input{Baseline: map[string]Data{}, Canary: map[string]Data{}}
	load := 0.8 + 0.4*rng.Float64() // shared traffic
	for _, side := range []struct {
		h *host
		m map[string]Data
	}{{b, in.Baseline}, {c, in.Canary}} {
		h := side.h
		h.state = 0.7*h.state + math.Sqrt(1-0.49)*rng.NormFloat64()
		f := math.Exp(h.drift * h.state)
		n := poisson(rng, rps*10*load)
		side.m["errors"] = Data{Events: binomial(rng, n, h.errRate), Trials: n}
		lat := make([]float64, int(n))
		for i := range lat {
			lat[i] = h.latency * f * math.Exp(0.5*rng.NormFloat64())
		}
		side.m["latency"] = Data{Values: lat, PerRequest: true}
		side.m["memory"] = Data{Values: []float64{h.memory * f * (1 + 0.02*rng.NormFloat64())}}
	}
	return in
}

// window runs a sequence over looks intervals and returns every verdict (stopping at the
// first Stop).
func window(rng *rand.Rand, ms []Metric, b, c host, rps float64, looks int, o Options) []Verdict {
	s := NewSequence(ms, o)
	var out []Verdict
	for k := 1; k <= looks; k++ {
		v := s.Look(simInterval(rng, &b, &c, rps), k == looks)
		out = append(out, v)
		if v.Stop() {
			break
		}
	}
	return out
}

// rates is an interval of one rate metric named errors.
func rates(xb, nb, xc, nc float64) Input {
	return Input{Baseline: map[string]Data{"errors": {Events: xb, Trials: nb}},
		Canary: map[string]Data{"errors": {Events: xc, Trials: nc}}}
}

// gauges is an interval of one gauge metric named g.
func gauges(b, c float64) Input {
	return Input{Baseline: map[string]Data{"g": {Values: []float64{b}}}, Canary: map[string]Data{"g": {Values: []float64{c}}}}
}

func last(vs []Verdict) Verdict { return vs[len(vs)-1] }
