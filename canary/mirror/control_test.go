package mirror

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/immunity-app/immunity/internal/freeport"

	"github.com/immunity-app/immunity/deployers"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	a, err := freeport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestSidecarControl(t *testing.T) {
	t.Parallel()
	primary := newPrimary(t)
	shadow := newShadow(t, http.StatusOK, false)
	listen, control := freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- RunSidecar(ctx, SidecarOptions{Listen: listen, Primary: primary.URL, Control: "http://" + control, Token: "s3cret"})
	}()
	c := Client{URL: "http://" + control, Token: "s3cret"}
	waitFor(t, "the sidecar", func() bool { _, err := c.Stats(ctx); return err == nil })

	bad := Client{URL: c.URL, Token: "wrong"}
	if err := bad.SetShadow(ctx, []string{shadow.URL}); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("wrong token: err = %v, want 401", err)
	}
	if err := c.SetShadow(ctx, []string{"no-scheme"}); err == nil || !strings.Contains(err.Error(), "400") {
		t.Fatalf("bad target: err = %v, want 400", err)
	}
	if err := c.SetShadow(ctx, []string{shadow.URL}); err != nil {
		t.Fatal(err)
	}
	do(t, "GET", "http://"+listen+"/x", "")
	if code, _ := do(t, "GET", "http://"+listen+ControlPath, ""); code != 200 {
		// With a separate control address the app's own path is proxied, not intercepted.
		t.Fatalf("GET %s on the traffic port = %d, want the primary's 200", ControlPath, code)
	}
	waitFor(t, "2 mirrored", func() bool { st, _ := c.Stats(ctx); return st.Mirrored == 2 })
	if err := c.Off(ctx); err != nil {
		t.Fatal(err)
	}
	do(t, "GET", "http://"+listen+"/y", "")
	if st, _ := c.Stats(ctx); st.Queued != 2 {
		t.Fatalf("queued = %d after off, want 2", st.Queued)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("sidecar did not stop")
	}
}

func TestSidecarNeedsToken(t *testing.T) {
	t.Parallel()
	err := RunSidecar(context.Background(), SidecarOptions{Listen: "127.0.0.1:0", Primary: "http://127.0.0.1:1"})
	if err == nil || !strings.Contains(err.Error(), "token") {
		t.Fatalf("err = %v, want a missing token error", err)
	}
}

func TestRegistry(t *testing.T) {
	t.Parallel()
	primary := newPrimary(t)
	shadow := newShadow(t, http.StatusOK, false)
	r := NewRegistry(Options{})
	defer r.Close()
	ctx := context.Background()
	h := deployers.Host{App: "papi", Region: "prod3", Name: "host1", URL: primary.URL}
	p, err := r.Start(ctx, h, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := r.Start(ctx, h, "127.0.0.1:0"); again != p {
		t.Fatal("Start twice made a second proxy")
	}
	if r.Lookup(h) != p || r.Lookup(deployers.Host{App: "papi", Region: "prod4", Name: "host1"}) != nil {
		t.Fatal("Lookup by app/region/host is wrong")
	}
	if err := r.SetShadow(ctx, deployers.Host{App: "papi", Region: "prod9", Name: "x"}, []string{shadow.URL}); err == nil {
		t.Fatal("SetShadow on a host without a mirror succeeded")
	}
	if err := r.SetShadow(ctx, h, []string{shadow.URL}); err != nil {
		t.Fatal(err)
	}
	if code, body := do(t, "GET", p.URL()+"/z", ""); code != 200 || !strings.HasPrefix(body, "primary GET /z") {
		t.Fatalf("through the registry's proxy: %d %q", code, body)
	}
	waitFor(t, "1 mirrored", func() bool { return p.Stats().Mirrored == 1 })
	if st := r.Stats()["papi/prod3/host1"]; st.Mirrored != 1 {
		t.Fatalf("registry stats = %+v", r.Stats())
	}
	r.Reset(ctx)
	if len(p.Shadow()) != 0 {
		t.Fatal("Reset left mirroring on")
	}
}

func TestSidecarsSwitchByHost(t *testing.T) {
	t.Parallel()
	a, _ := newProxy(t, newPrimary(t).URL, Options{})
	ctlA := httptestServer(t, ControlHandler(a, "tok"))
	s := Sidecars{Control: map[string]string{"prod3/host1": ctlA}, Token: "tok"}
	ctx := context.Background()
	h := deployers.Host{App: "papi", Region: "prod3", Name: "host1"}
	if err := s.SetShadow(ctx, h, []string{"http://canary:1"}); err != nil {
		t.Fatal(err)
	}
	if got := a.Shadow(); len(got) != 1 || got[0] != "http://canary:1" {
		t.Fatalf("shadow = %v", got)
	}
	if err := s.SetShadow(ctx, deployers.Host{Region: "prod3", Name: "host2"}, []string{"http://c:1"}); err == nil {
		t.Fatal("SetShadow on a host without a sidecar succeeded")
	}
	if err := s.Reset(ctx); err != nil || len(a.Shadow()) != 0 {
		t.Fatalf("Reset: %v, shadow %v", err, a.Shadow())
	}
}

func httptestServer(t *testing.T, h http.Handler) string {
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s.URL
}

func TestCommandFlags(t *testing.T) {
	var out strings.Builder
	if err := Command(context.Background(), []string{"--primary", "http://127.0.0.1:1"}, &out, nil); err == nil ||
		!strings.Contains(out.String(), "usage: immunity mirror") {
		t.Fatalf("missing --listen: err %v, output %q", err, out.String())
	}
	t.Setenv("IMMUNITY_MIRROR_TOKEN", "")
	err := Command(context.Background(), []string{"--listen", "127.0.0.1:0", "--primary", "http://127.0.0.1:1"}, &out, nil)
	if err == nil || !strings.Contains(err.Error(), "IMMUNITY_MIRROR_TOKEN") {
		t.Fatalf("no token: err = %v", err)
	}
}
