package mirrorsrc

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/immunity-app/immunity/canary/internal/testapp"
	"github.com/immunity-app/immunity/canary/measure"
	"github.com/immunity-app/immunity/canary/mirror"
	"github.com/immunity-app/immunity/deployers"
	"github.com/immunity-app/immunity/pipeline/judge"
)

func TestMirrorRecordsAsMetrics(t *testing.T) {
	t.Parallel()
	prod := httptest.NewServer(testapp.New(0, 0))
	defer prod.Close()
	can := httptest.NewServer(testapp.New(2, 20*time.Millisecond)) // every second request fails
	defer can.Close()
	reg := mirror.NewRegistry(mirror.Options{Workers: 1})
	defer reg.Close()
	ctx := context.Background()
	b := deployers.Host{App: "papi", Region: "prod3", Name: "host1", URL: prod.URL}
	c := deployers.Host{App: "papi", Region: "sandbox2", Name: "host1", URL: can.URL + "/"}
	p, err := reg.Start(ctx, b, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.SetShadow([]string{can.URL})
	w := measure.Window{Baseline: []deployers.Host{b, {App: "papi", Region: "prod3", Name: "host9"}}, Canary: []deployers.Host{c},
		Metrics: []measure.Metric{{Metric: judge.Metric{Name: measure.ErrorRate}}, {Metric: judge.Metric{Name: measure.Latency}}, {Metric: judge.Metric{Name: measure.MismatchRate}}, {Metric: judge.Metric{Name: "cpu"}}}}
	src := New(reg.Lookup)
	get := func() {
		resp, err := http.Get(p.URL() + "/x")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	get() // before the window: not counted
	for p.Stats().Mirrored < 1 {
		time.Sleep(5 * time.Millisecond)
	}
	src.Measure(ctx, w, time.Now(), time.Now())
	for range 6 {
		get()
	}
	for p.Stats().Mirrored < 7 {
		time.Sleep(5 * time.Millisecond)
	}
	in, err := src.Measure(ctx, w, time.Now(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if d := in.Baseline[measure.ErrorRate]; d.Trials != 6 || d.Events != 0 {
		t.Fatalf("baseline error_rate = %+v, want 0 of 6", d)
	}
	// The canary app counted the pre-window request too: requests 2, 4, 6 of the window fail.
	if d := in.Canary[measure.ErrorRate]; d.Trials != 6 || d.Events != 3 {
		t.Fatalf("canary error_rate = %+v, want 3 of 6", d)
	}
	if d := in.Canary[measure.MismatchRate]; d.Trials != 6 || d.Events != 3 {
		t.Fatalf("canary mismatch_rate = %+v, want 3 of 6", d)
	}
	cl, bl := in.Canary[measure.Latency].Values, in.Baseline[measure.Latency].Values
	if len(cl) != 6 || len(bl) != 6 || cl[0] < 0.02 {
		t.Fatalf("latency canary %v baseline %v", cl, bl)
	}
	if e := in.Baseline[measure.ErrorRate].Err; e != "no traffic mirror in front of prod3/host9" {
		t.Fatalf("missing mirror err = %q", e)
	}
	if e := in.Canary["cpu"].Err; e == "" {
		t.Fatal("an unknown metric has no error")
	}
}
