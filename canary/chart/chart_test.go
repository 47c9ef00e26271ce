package chart

import (
	"bytes"
	"image/png"
	"testing"

	"github.com/immunity-app/immunity/pipeline/judge"
)

func TestPNG(t *testing.T) {
	t.Parallel()
	v := judge.Verdict{Outcome: judge.Fail, Metrics: []judge.MetricResult{
		{Name: "latency", Outcome: judge.Fail, Effect: 0.45, Low: 0.3, High: 0.6, NBaseline: 100, NCanary: 100},
		{Name: "errors", Outcome: judge.Pass, Effect: 1e9, Low: 0.5, High: 1e9, NBaseline: 100, NCanary: 100}, // capped, not infinite
		{Name: "signups", Outcome: judge.Error, NBaseline: 0},                                                 // no data: left out
	}}
	b, err := PNG(v, "papi sandbox2: canary vs baseline")
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	if r := img.Bounds(); r.Dx() < 300 || r.Dy() < 200 {
		t.Errorf("chart is %v; want a readable size", r)
	}
	if _, err := PNG(judge.Verdict{Metrics: v.Metrics[2:]}, "x"); err == nil {
		t.Error("a verdict without data drew a chart; want an error")
	}
}
