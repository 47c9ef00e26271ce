package canary

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/immunity-app/immunity/canary/internal/testapp"
	"github.com/immunity-app/immunity/canary/mirror"
	"github.com/immunity-app/immunity/deployers"
	"github.com/immunity-app/immunity/pipeline"
	"github.com/immunity-app/immunity/pipeline/config"
	"github.com/immunity-app/immunity/pipeline/judge"
)

// fleet is a baseline region behind in-process mirrors, a canary region, and production
// traffic sent to the mirrors.
type fleet struct {
	reg      *mirror.Registry
	baseline []deployers.Host
	canary   []deployers.Host
	apps     []*testapp.App // the canary's
}

func serve(t *testing.T, region, name string, a *testapp.App) deployers.Host {
	s := httptest.NewServer(a)
	t.Cleanup(s.Close)
	return deployers.Host{App: "papi", Region: region, Name: name, URL: s.URL}
}

func newFleet(t *testing.T, canaryFailEvery int, canaryDelay time.Duration) *fleet {
	ctx, cancel := context.WithCancel(context.Background())
	f := &fleet{reg: mirror.NewRegistry(mirror.Options{})}
	var fronts []string
	for _, n := range []string{"host1", "host2"} {
		h := serve(t, "prod3", n, testapp.New(0, time.Millisecond))
		p, err := f.reg.Start(ctx, h, "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		f.baseline = append(f.baseline, h)
		fronts = append(fronts, p.URL())
	}
	for _, n := range []string{"host1", "host2"} {
		a := testapp.New(canaryFailEvery, canaryDelay)
		f.apps = append(f.apps, a)
		f.canary = append(f.canary, serve(t, "sandbox2", n, a))
	}
	var wg sync.WaitGroup
	for _, u := range fronts {
		wg.Add(1)
		go func() { defer wg.Done(); traffic(ctx, u) }()
	}
	t.Cleanup(func() { cancel(); wg.Wait(); f.reg.Close() })
	return f
}

// traffic is production: a GET every 4 ms and a POST now and then, until ctx ends.
func traffic(ctx context.Context, u string) {
	c := &http.Client{Timeout: 2 * time.Second}
	t := time.NewTicker(4 * time.Millisecond)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		method := http.MethodGet
		if i%10 == 9 {
			method = http.MethodPost
		}
		req, _ := http.NewRequestWithContext(ctx, method, u+"/items", nil)
		if resp, err := c.Do(req); err == nil {
			resp.Body.Close()
		}
	}
}

func (f *fleet) request(source string) pipeline.MonitorRequest {
	return pipeline.MonitorRequest{App: "papi", Region: "sandbox2", Release: "1a2b3c4d5e", BaselineRegion: "prod3",
		Canary: f.canary, Baseline: f.baseline, Period: 3 * time.Second, Interval: 300 * time.Millisecond, Source: source, Metrics: config.DefaultMetrics()}
}

func (f *fleet) mirroring() bool {
	for _, h := range f.baseline {
		if len(f.reg.Lookup(h).Shadow()) > 0 {
			return true
		}
	}
	return false
}

func runWindow(t *testing.T, f *fleet, source string) (judge.Verdict, []judge.Verdict) {
	t.Helper()
	m := &Monitor{Mirrors: f.reg, Registry: f.reg}
	var looks []judge.Verdict
	v, err := m.Monitor(context.Background(), f.request(source), func(v judge.Verdict) { looks = append(looks, v) })
	if err != nil {
		t.Fatal(err)
	}
	if f.mirroring() {
		t.Fatal("mirroring still on after the window")
	}
	if !v.Final {
		t.Fatalf("returned verdict is not final: %+v", v)
	}
	return v, looks
}

func TestGoodCanaryPasses(t *testing.T) {
	t.Parallel()
	f := newFleet(t, 0, time.Millisecond)
	v, looks := runWindow(t, f, "")
	if v.Outcome != judge.Pass {
		t.Fatalf("verdict = %s (%s), want pass; metrics %+v", v.Outcome, v.Reason, v.Metrics)
	}
	if len(looks) != 9 {
		t.Fatalf("%d interim looks, want 9 (10 looks, the last final)", len(looks))
	}
	if f.apps[0].Served() == 0 || f.apps[1].Served() == 0 {
		t.Fatal("a canary host got no mirrored traffic")
	}
	var got map[string]int = map[string]int{}
	for _, r := range v.Metrics {
		got[r.Name] = r.NCanary
	}
	if got["error_rate"] < 100 || got["latency"] < 100 {
		t.Fatalf("canary sample sizes = %v, want over 100 each", got)
	}
}

func TestBadCanaryFailsEarly(t *testing.T) {
	t.Parallel()
	f := newFleet(t, 2, 30*time.Millisecond) // half the requests fail, 30 ms each
	v, looks := runWindow(t, f, "")
	if v.Outcome != judge.Fail {
		t.Fatalf("verdict = %s (%s), want fail", v.Outcome, v.Reason)
	}
	if len(looks) >= 9 || !strings.Contains(v.Reason, "stopped at look") {
		t.Fatalf("%d looks, reason %q: want an early stop", len(looks), v.Reason)
	}
}

func TestBadCanaryFailsOnMirrorRecords(t *testing.T) {
	t.Parallel()
	f := newFleet(t, 2, 30*time.Millisecond)
	v, _ := runWindow(t, f, "mirror")
	if v.Outcome != judge.Fail {
		t.Fatalf("verdict = %s (%s), want fail", v.Outcome, v.Reason)
	}
}

func TestDeadCanaryIsAMeasurementError(t *testing.T) {
	t.Parallel()
	f := newFleet(t, 0, 0)
	// A canary whose process is gone: the connection is cut before any answer. (A closed
	// test server's port is free for another test's server to take meanwhile.)
	dead := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	}))
	defer dead.Close()
	for i := range f.canary {
		f.canary[i].URL = dead.URL
	}
	v, looks := runWindow(t, f, "")
	if v.Outcome != judge.Error || !strings.Contains(v.Reason, "stopped at look 3 of 10") {
		t.Fatalf("verdict = %s (%s), want an error after 3 failed scrapes", v.Outcome, v.Reason)
	}
	if why := v.Metrics[0].Why; !strings.Contains(why, "scrape sandbox2/host1") {
		t.Fatalf("error_rate explanation %q does not name the failed scrape", why)
	}
	if len(looks) != 3 {
		t.Fatalf("%d looks, want 3", len(looks))
	}
}

func TestMirrorsTurnedOffWhenCancelled(t *testing.T) {
	t.Parallel()
	f := newFleet(t, 0, 0)
	ctx, cancel := context.WithCancel(context.Background())
	m := &Monitor{Mirrors: f.reg, Registry: f.reg}
	go func() {
		for !f.mirroring() {
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
	}()
	_, err := m.Monitor(ctx, f.request(""), nil)
	if err == nil {
		t.Fatal("a cancelled window returned no error")
	}
	if f.mirroring() {
		t.Fatal("mirroring still on after a cancelled window")
	}
}

func TestResetTurnsEveryMirrorOff(t *testing.T) {
	t.Parallel()
	f := newFleet(t, 0, 0)
	for _, h := range f.baseline {
		f.reg.SetShadow(context.Background(), h, []string{f.canary[0].URL})
	}
	if err := (&Monitor{Mirrors: f.reg}).Reset(context.Background()); err != nil {
		t.Fatal(err)
	}
	if f.mirroring() {
		t.Fatal("Reset left a mirror on")
	}
}

func TestUnknownSource(t *testing.T) {
	t.Parallel()
	f := &fleet{canary: []deployers.Host{{}}, baseline: []deployers.Host{{}}}
	_, err := (&Monitor{}).Monitor(context.Background(), f.request("graphite"), nil)
	if err == nil || !strings.Contains(err.Error(), `unknown metric source "graphite"`) {
		t.Fatalf("err = %v", err)
	}
}

func TestProductionHostIsNotMirrored(t *testing.T) {
	t.Parallel()
	f := newFleet(t, 0, 0)
	req := f.request("")
	req.Region = "prod3"
	req.Canary = f.baseline[:1]
	req.Baseline = f.baseline[1:]
	req.Period, req.Interval = 200*time.Millisecond, 100*time.Millisecond
	m := &Monitor{Mirrors: f.reg, Registry: f.reg}
	watching := make(chan bool, 1)
	go func() {
		seen := false
		for range 20 {
			seen = seen || f.mirroring()
			time.Sleep(10 * time.Millisecond)
		}
		watching <- seen
	}()
	if _, err := m.Monitor(context.Background(), req, nil); err != nil {
		t.Fatal(err)
	}
	if <-watching {
		t.Fatal("a production canary was sent mirrored traffic")
	}
	req.Source = "mirror"
	if _, err := m.Monitor(context.Background(), req, nil); err == nil {
		t.Fatal("source mirror accepted for a production canary")
	}
}
