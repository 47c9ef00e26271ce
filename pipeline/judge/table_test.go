package judge

import (
	"flag"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// spread returns n values around center with a fixed, skewed shape (no randomness, so
// the golden files are stable).
func spread(n int, center float64) []float64 {
	xs := make([]float64, n)
	for i := range xs {
		q := (float64(i) + 0.5) / float64(n)
		xs[(i*7919)%n] = center * math.Exp(0.4*math.Log(q/(1-q))/1.7)
	}
	return xs
}

func goldenInput() ([]Metric, Input) {
	ms := []Metric{
		{Name: "http_errors", Kind: Rate, Direction: Increase, AllowedEffect: 0.2, Critical: true},
		{Name: "checkout_errors", Kind: Rate, Direction: Increase, AllowedEffect: 0.2, Critical: true},
		{Name: "p99_latency", Kind: Latency, Direction: Increase, AllowedEffect: 0.2, Unit: "s"},
		{Name: "mean_latency", Kind: Latency, Direction: Increase, AllowedEffect: 0.1, Critical: true, Unit: "s"},
		{Name: "heap|bytes", Kind: Gauge, Direction: Either, AllowedEffect: 0.25, Unit: "bytes"},
		{Name: "queue_depth", Kind: Gauge, Direction: Increase, AllowedEffect: 0.5, NoData: NoDataPass},
	}
	in := Input{
		Baseline: map[string]Data{
			"http_errors":     {Events: 12, Trials: 6000},
			"checkout_errors": {Events: 0, Trials: 600},
			"p99_latency":     {Values: spread(30, 0.101)},
			"mean_latency":    {Values: spread(300, 0.040)},
			"heap|bytes":      {Values: spread(30, 200<<20)},
		},
		Canary: map[string]Data{
			"http_errors":     {Events: 14, Trials: 6100},
			"checkout_errors": {Events: 3, Trials: 610},
			"p99_latency":     {Values: spread(30, 0.212)},
			"mean_latency":    {Values: spread(300, 0.041)},
			"heap|bytes":      {Values: spread(30, 210<<20)},
		},
	}
	return ms, in
}

func TestTableGolden(t *testing.T) {
	t.Parallel()
	ms, in := goldenInput()
	final := Judge(ms, in, Options{Looks: 30})

	s := NewSequence(ms, Options{Looks: 30})
	s.Look(in, false)
	in.Canary["mean_latency"] = Data{Err: "scrape http://127.0.0.1:9101/metrics: connection refused"}
	interim := s.Look(in, false)

	for name, v := range map[string]Verdict{"final.md": final, "interim.md": interim} {
		golden(t, name, v.Table())
	}
}

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
