package app

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/immunity-app/immunity/internal/freeport"

	"github.com/immunity-app/immunity/canary/mirror"
	"github.com/immunity-app/immunity/deployers"
	"github.com/immunity-app/immunity/pipeline/config"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	a, err := freeport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestSidecarMirrorsAreSwitchedThroughTheirControlURL: a production host with hosts.mirror
// is switched through its sidecar (authenticated with the token), the others in process.
func TestSidecarMirrorsAreSwitchedThroughTheirControlURL(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer app.Close()
	ctrl := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go mirror.RunSidecar(ctx, mirror.SidecarOptions{Listen: freeAddr(t), Primary: app.URL, Control: ctrl, Token: "tok"})

	cfg, err := config.Parse(filepath.Join(t.TempDir(), "immunity.yml"), []byte(`
apps:
  - name: papi
    repo: {path: papi.git}
    build: {command: [make], artifacts: [bin]}
    run: {command: [bin/papi]}
    regions:
      - name: prod3
        production: true
        hosts: [{name: web1, port: 41911, mirror: "http://`+ctrl+`"}, {name: web2, port: 41912}]
`))
	if err != nil {
		t.Fatal(err)
	}
	reg := mirror.NewRegistry(mirror.Options{})
	defer reg.Close()
	web2 := deployers.Host{App: "papi", Region: "prod3", Name: "web2", URL: app.URL}
	if _, err := reg.Start(ctx, web2, "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	m := switchMirrors(cfg, reg, "tok")
	web1 := deployers.Host{App: "papi", Region: "prod3", Name: "web1"}
	shadow := func() []string {
		req, _ := http.NewRequest("GET", "http://"+ctrl+mirror.ControlPath, nil)
		req.Header.Set("Authorization", "Bearer tok")
		for i := 0; i < 50; i++ { // the sidecar may still be starting
			if resp, err := http.DefaultClient.Do(req); err == nil {
				defer resp.Body.Close()
				var st struct{ Shadow []string }
				json.NewDecoder(resp.Body).Decode(&st)
				return st.Shadow
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatal("sidecar control never answered")
		return nil
	}
	shadow()
	if err := m.SetShadow(ctx, web1, []string{"http://127.0.0.1:9"}); err != nil {
		t.Fatal(err)
	}
	if got := shadow(); !slices.Equal(got, []string{"http://127.0.0.1:9"}) {
		t.Fatalf("sidecar shadow = %v", got)
	}
	if err := m.SetShadow(ctx, web2, []string{"http://127.0.0.1:9"}); err != nil {
		t.Fatal(err)
	}
	if got := reg.Lookup(web2).Shadow(); len(got) != 1 {
		t.Fatalf("in-process shadow = %v", got)
	}
	if err := m.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	if len(shadow()) != 0 || len(reg.Lookup(web2).Shadow()) != 0 {
		t.Fatal("Reset left a mirror on")
	}
	// A wrong token is refused by the sidecar.
	if err := switchMirrors(cfg, reg, "nope").SetShadow(ctx, web1, []string{"http://127.0.0.1:9"}); err == nil {
		t.Fatal("the sidecar obeyed a wrong token")
	}
}
