package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/immunity-app/immunity/pipeline"
	"github.com/immunity-app/immunity/pipeline/config"
	"github.com/immunity-app/immunity/pipeline/judge"
	"github.com/immunity-app/immunity/store"
)

const dashboardConfig = `
apps:
  - name: papi
    repo: {path: papi.git}
    build: {command: [make], artifacts: [bin]}
    run: {command: [bin/papi]}
    regions:
      - name: sandbox2
        hosts: [{name: host1, port: 41901}]
        monitor: {mirror_from: prod3}
      - name: prod3
        production: true
        manual_approval: true
        hosts: [{name: host1, port: 41902}]
`

// openTest opens an Instance on a real store in a temp folder, without starting it.
func openTest(t *testing.T) *Instance {
	t.Helper()
	return openWith(t, dashboardConfig)
}

// openWith opens an instance (its store closed at the test's end) on the config yml.
func openWith(t *testing.T, yml string) *Instance {
	t.Helper()
	dir := t.TempDir()
	cfg, err := config.Parse(filepath.Join(dir, "immunity.yml"), []byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	in, err := Open(context.Background(), Options{Config: cfg, Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Store.Close() })
	return in
}

// chromiumBin finds Chromium, or skips (fails under IMMUNITY_TEST_REQUIRE_ALL).
func chromiumBin(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("IMMUNITY_TEST_REQUIRE_ALL") != "" {
			t.Fatal("chromium is not installed (bash .ci/test installs it)")
		}
		t.Skip("chromium is not installed")
	}
	return bin
}

// dumpDOM renders a page in headless Chromium and returns the DOM it built; flags are
// added to Chromium's command line. It may run on any goroutine.
func dumpDOM(bin, profile, url string, flags ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + profile, "--dump-dom"}
	cmd := exec.CommandContext(ctx, bin, append(append(args, flags...), url)...)
	cmd.WaitDelay = 5 * time.Second // its helper processes may hold stdout after a kill
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("chromium %s: %w", url, err)
	}
	return string(out), nil
}

// chromium renders a page in headless Chromium and returns the DOM it built.
func chromium(t *testing.T, url string, flags ...string) string {
	t.Helper()
	out, err := dumpDOM(chromiumBin(t), t.TempDir(), url, flags...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// fillDashboard records, through the store API, what a dashboard shows: a live release,
// a failed run with a canary verdict and test output, a run waiting for promotion to
// prod3, history, a log line and a lock.
func fillDashboard(t *testing.T, in *Instance) {
	t.Helper()
	ctx := context.Background()
	st := in.Store
	st.SetLive(ctx, "papi", "prod3", "host1", "1111111aaaa")
	st.AddHistory(ctx, store.HistoryEntry{App: "papi", Region: "prod3", SHA: "1111111aaaa", Action: "seed", Actor: "demo"})
	run, err := st.CreateRun(ctx, store.Run{App: "papi", SHA: "2222222bbbb", Subject: "Rank <search> results <img src=x onerror=alert(1)>", Author: "ada", State: "failed"},
		[]string{"sandbox2", "prod3"}, map[string][]string{"sandbox2": {"host1"}, "prod3": {"host1"}})
	if err != nil {
		t.Fatal(err)
	}
	v, _ := json.Marshal(judge.Verdict{Outcome: judge.Fail, Score: 50, Reason: "failed search_latency", Final: true, Metrics: []judge.MetricResult{
		{Name: "search_latency", Outcome: judge.Fail, Baseline: 0.0025, Canary: 0.375, Effect: 149, Low: 120, High: 180, NBaseline: 40, NCanary: 36, Why: "significantly higher"},
		{Name: "error_rate", Kind: judge.Rate, Outcome: judge.Pass, Baseline: 0.01, Canary: 0.011, Effect: 0.1, Low: -0.2, High: 0.4, NBaseline: 900, NCanary: 880, Why: "within range"}}})
	st.UpdateStage(ctx, run.Stages[0].ID, store.StageUpdate{State: "deploying"})
	if err := st.SetHostStep(ctx, run.Stages[0].ID, "host1", "done", "1111111aaaa", "switched"); err != nil {
		t.Fatal(err)
	}
	st.UpdateStage(ctx, run.Stages[0].ID, store.StageUpdate{State: "failed", Message: "canary analysis failed in sandbox2", Verdict: string(v),
		Tests: "--- FAIL: TestSearch <b>bold</b>\nexit status 1"})
	st.AddEvent(ctx, store.Event{RunID: run.ID, App: "papi", Region: "sandbox2", Host: "host1", Kind: string(pipeline.Logged), Message: "smoke test GET /search answered 200"})
	st.SetRunState(ctx, run.ID, "failed", "canary analysis failed in sandbox2")
	st.SetLive(ctx, "papi", "sandbox2", "host1", "2222222bbbb") // a failed non-production release stays until the next
	waiting, err := st.CreateRun(ctx, store.Run{App: "papi", SHA: "3333333cccc", Subject: "Cache the index", Author: "lin", State: "waiting"},
		[]string{"sandbox2", "prod3"}, map[string][]string{"sandbox2": {"host1"}, "prod3": {"host1"}})
	if err != nil {
		t.Fatal(err)
	}
	st.UpdateStage(ctx, waiting.Stages[0].ID, store.StageUpdate{State: "succeeded"})
	st.UpdateStage(ctx, waiting.Stages[1].ID, store.StageUpdate{State: "awaiting_approval", Message: "ready for prod3"})
	in.Engine.Lock(ctx, pipeline.Actor{ID: "github:1", Name: "ada", Via: "github"}, "papi", "prod3", "incident 42")
}

func TestDashboardInABrowser(t *testing.T) {
	t.Parallel()
	in := openTest(t)
	fillDashboard(t, in)
	srv := httptest.NewServer(in.Server.Handler())
	defer srv.Close()
	home := chromium(t, srv.URL+"/")
	for _, want := range []string{"papi", "sandbox2", `prod3</a></b> <span class="tag prod">production</span>`, "1111111",
		"locked by ada: incident 42", "Rank &lt;search&gt; results &lt;img src=x onerror=alert(1)&gt;",
		"<code>immunity promote papi prod3</code>", "<code>/immunity promote papi prod3</code>", "3333333", "Cache the index",
		"Runs in flight", "Recent runs", "Audit log", "History", "seed"} {
		if !strings.Contains(home, want) {
			t.Errorf("dashboard lacks %q", want)
		}
	}
	page := chromium(t, srv.URL+"/runs/1")
	for _, want := range []string{"Run 1: papi", "canary analysis failed in sandbox2", "search_latency", "significantly higher", "+14900.0%",
		`src="/runs/1/stages/sandbox2/chart.png"`, "Slack thread", "papi 2222222 failed in sandbox2", "smoke test GET /search answered 200",
		"--- FAIL: TestSearch &lt;b&gt;bold&lt;/b&gt;", "1.1%", "Event log"} {
		if !strings.Contains(page, want) {
			t.Errorf("run page lacks %q", want)
		}
	}
	for _, doc := range []string{home, page} {
		if strings.Contains(doc, "<img src=\"x\"") || strings.Contains(doc, "<b>bold</b>") {
			t.Errorf("untrusted text became markup")
		}
	}
	if t.Failed() {
		t.Logf("home:\n%s\nrun:\n%s", home, page)
	}
}

// postCommand posts a command to the API with a content type and headers, and returns
// the status and the answer's text.
func postCommand(t *testing.T, cl *http.Client, url, ctype, body string, headers ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", url+"/api/commands", strings.NewReader(body))
	req.Header.Set("Content-Type", ctype)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct{ Text string }
	json.NewDecoder(resp.Body).Decode(&r)
	return resp.StatusCode, r.Text
}

func TestCommandAPIRunsCommandsAsTheTokensOwner(t *testing.T) {
	in := openTest(t)
	srv := httptest.NewServer(in.Server.Handler())
	defer srv.Close()
	tok, err := CreateToken(context.Background(), in.Store, "ada", RoleMember, "test")
	if err != nil {
		t.Fatal(err)
	}
	post := func(body string) (int, string) {
		return postCommand(t, srv.Client(), srv.URL, "application/json", body, "Authorization", "Bearer "+tok)
	}
	// The body's "actor" is not read: the token says who this is.
	if code, text := post(`{"text": "lock papi prod3 deploy freeze", "actor": "mallory"}`); code != 200 || !strings.Contains(text, "locked") {
		t.Fatalf("lock: %d %q", code, text)
	}
	if code, text := post(`{"text": "promte papi prod3"}`); code != 422 || !strings.Contains(text, "promote") {
		t.Fatalf("typo: %d %q", code, text)
	}
	if code, _ := post(`not json`); code != 400 {
		t.Fatalf("bad body: %d", code)
	}
	audit, _ := in.Store.Audits(context.Background(), "papi", 5)
	if len(audit) == 0 || audit[0].Actor != "ada" || audit[0].ActorID != "token:ada" || audit[0].Via != "api" || audit[0].Action != "lock" {
		t.Fatalf("audit = %+v", audit)
	}
	l, err := in.Store.Lock(context.Background(), "papi", "prod3")
	if err != nil || l.HolderID != "token:ada" {
		t.Fatalf("lock = %+v, %v", l, err)
	}
	// Revoked, the token is refused, and the region stays as it was.
	if err := in.Store.RevokeToken(context.Background(), "ada"); err != nil {
		t.Fatal(err)
	}
	if code, text := post(`{"text": "unlock papi prod3"}`); code != 401 || !strings.Contains(text, "not a token in force") {
		t.Fatalf("revoked token: %d %q", code, text)
	}
	if _, err := in.Store.Lock(context.Background(), "papi", "prod3"); err != nil {
		t.Fatal("a revoked token unlocked the region")
	}
}

func TestCommandAPITrustsNoCallerForWhereItComesFrom(t *testing.T) {
	in := openTest(t)
	srv := httptest.NewServer(in.Server.Handler()) // on loopback: no longer an operator
	defer srv.Close()
	cases := []struct {
		name, ctype, body string
		headers           []string
		code              int
		says              string
	}{
		{"anonymous on loopback", "application/json", `{"text": "lock papi prod3 x", "actor": "ada"}`, nil, 422, "needs a verified identity"},
		{"a wrong token", "application/json", `{"text": "lock papi prod3 x"}`, []string{"Authorization", "Bearer imm_wrong"}, 401, "not a token in force"},
		{"text/plain from another origin", "text/plain", `{"text":"promote papi prod3","actor":"ada"}`,
			[]string{"Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site"}, 403, "cross-origin"},
		{"text/plain without an origin", "text/plain", `{"text":"lock papi prod3 x"}`, nil, 415, "application/json"},
		{"a form", "application/x-www-form-urlencoded", `text=lock+papi+prod3`, nil, 415, "application/json"},
		{"JSON from another origin", "application/json", `{"text":"lock papi prod3 x"}`, []string{"Origin", "https://evil.example"}, 403, "cross-origin"},
	}
	for _, tc := range cases {
		code, text := postCommand(t, srv.Client(), srv.URL, tc.ctype, tc.body, tc.headers...)
		if code != tc.code || !strings.Contains(text, tc.says) {
			t.Errorf("%s: %d %q, want %d saying %q", tc.name, code, text, tc.code, tc.says)
		}
	}
	if _, err := in.Store.Lock(context.Background(), "papi", "prod3"); err == nil {
		t.Fatal("a refused call locked the region")
	}
	// Reading needs no identity.
	if code, text := postCommand(t, srv.Client(), srv.URL, "application/json", `{"text": "status papi"}`); code != 200 || !strings.Contains(text, "prod3") {
		t.Fatalf("status: %d %q", code, text)
	}
}

func TestLocalSocketIsTheServersOwnUser(t *testing.T) {
	in := openTest(t)
	dir, err := os.MkdirTemp("", "imm")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, SocketName)
	ln, err := ListenSocket(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("socket %v mode %v", err, fi.Mode())
	}
	if _, err := ListenSocket(path); err == nil || !strings.Contains(err.Error(), "another server") {
		t.Fatalf("second listener: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in.Server.Serve(ctx, ln) }()
	defer func() { cancel(); <-done }()
	cl := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", path)
	}}}
	if code, text := postCommand(t, cl, "http://immunity", "application/json", `{"text": "lock papi prod3 maintenance"}`); code != 200 {
		t.Fatalf("lock over the socket: %d %q", code, text)
	}
	l, err := in.Store.Lock(context.Background(), "papi", "prod3")
	me, _ := user.Current()
	if err != nil || l.HolderID != "local:"+me.Username || l.Holder != me.Username {
		t.Fatalf("lock = %+v, %v", l, err)
	}
	// The socket's user is an admin: it may make tokens.
	req, _ := http.NewRequest("POST", "http://immunity/api/tokens", strings.NewReader(`{"name": "ci", "role": "member"}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var tv tokenView
	json.NewDecoder(resp.Body).Decode(&tv)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(tv.Token, tokenPrefix) {
		t.Fatalf("token create: %d %+v", resp.StatusCode, tv)
	}
	ts, _ := in.Store.Tokens(context.Background())
	if len(ts) != 1 || ts[0].Hash == tv.Token || ts[0].Hash != hashToken(tv.Token) {
		t.Fatalf("stored tokens = %+v (the value must not be stored)", ts)
	}
}

func TestDashboardUpdatesWithoutReload(t *testing.T) {
	t.Parallel()
	in := openTest(t)
	fillDashboard(t, in)
	srv := httptest.NewServer(in.Server.Handler())
	defer srv.Close()
	bin, profile := chromiumBin(t), t.TempDir()
	type result struct {
		dom string
		err error
	}
	done := make(chan result, 1)
	go func() {
		// Virtual time stands still while the page's event stream is open; once the stream
		// ends, the page runs its timers and fetches for the budget, then is dumped.
		dom, err := dumpDOM(bin, profile, srv.URL+"/", "--virtual-time-budget=3000")
		done <- result{dom, err}
	}()
	deadline := time.Now().Add(30 * time.Second)
	for in.Server.live.Clients() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the page never opened /api/events")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := in.Engine.Lock(context.Background(), pipeline.Actor{Name: "bob", Via: "cli"}, "papi", "sandbox2", "flaky <tests>"); err != nil {
		t.Fatal(err)
	}
	for in.Server.live.Sent() == 0 { // published, heard back and handed to the stream
		if time.Now().After(deadline) {
			t.Fatal("the lock never reached the page's stream")
		}
		time.Sleep(20 * time.Millisecond)
	}
	in.Server.live.Close() // the stream sends what it holds, then ends (as on shutdown)
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	for _, want := range []string{"locked by bob: flaky &lt;tests&gt;", `data-last-event="1"`, `data-refreshed=`} {
		if !strings.Contains(r.dom, want) {
			t.Errorf("page after the event lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("page:\n%s", r.dom)
	}
}

func TestChartEndpointDrawsTheVerdict(t *testing.T) {
	t.Parallel()
	in := openTest(t)
	fillDashboard(t, in)
	srv := httptest.NewServer(in.Server.Handler())
	defer srv.Close()
	get := func(path string) (int, string, []byte) {
		resp, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type"), b
	}
	code, ct, body := get("/runs/1/stages/sandbox2/chart.png")
	if code != 200 || ct != "image/png" || !bytes.HasPrefix(body, []byte("\x89PNG\r\n\x1a\n")) {
		t.Fatalf("chart: %d %s %q", code, ct, body[:min(len(body), 40)])
	}
	if img, err := png.Decode(bytes.NewReader(body)); err != nil || img.Bounds().Dx() < 200 {
		t.Fatalf("chart is not a readable PNG: %v", err)
	}
	for _, path := range []string{"/runs/1/stages/prod3/chart.png", "/runs/99/stages/sandbox2/chart.png", "/runs/x/stages/sandbox2/chart.png"} {
		if code, _, _ := get(path); code != 404 {
			t.Errorf("%s: %d, want 404", path, code)
		}
	}
}

func TestFragmentsAndTheNoScriptFallback(t *testing.T) {
	t.Parallel()
	in := openTest(t)
	fillDashboard(t, in)
	srv := httptest.NewServer(in.Server.Handler())
	defer srv.Close()
	get := func(path string) (int, string) {
		resp, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	// Each fragment answers with the element it replaces, so live.js can swap it by id.
	for path, id := range map[string]string{"/ui/apps/papi": "app-papi", "/ui/runs": "runs", "/ui/audit": "audit",
		"/ui/runs/1": "run-1", "/ui/runs/1/log": "runlog-1"} {
		code, body := get(path)
		if code != 200 || !strings.Contains(strings.SplitN(body, ">", 2)[0], `id="`+id+`"`) {
			t.Errorf("%s: %d, want an element with id %s first:\n%.300s", path, code, id, body)
		}
	}
	if code, _ := get("/ui/apps/nope"); code != 404 {
		t.Errorf("unknown app fragment: %d", code)
	}
	for _, page := range []string{"/", "/runs/1"} {
		if _, body := get(page); !strings.Contains(body, `<noscript><meta http-equiv="refresh"`) {
			t.Errorf("%s has no refresh for browsers without JavaScript", page)
		}
	}
	if code, body := get("/assets/live.js"); code != 200 || !strings.Contains(body, "EventSource") {
		t.Errorf("live.js: %d", code)
	}
	if code, _ := get("/assets/home.html"); code != 404 {
		t.Errorf("templates are served as assets: %d", code)
	}
}

// What reconciliation found shows on the app's card.
func TestDashboardShowsWhatReconciliationFound(t *testing.T) {
	t.Parallel()
	in := openTest(t)
	msg := "prod3/host1 found on 2222222, store said 1111111"
	if err := in.Store.AddEvent(context.Background(), store.Event{App: "papi", Region: "prod3", Host: "host1", Kind: string(pipeline.Reconciled), Message: msg}); err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	in.Server.Handler().ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
	if w.Code != 200 || !strings.Contains(w.Body.String(), "Reconciled with the hosts") || !strings.Contains(w.Body.String(), msg) {
		t.Fatalf("dashboard %d lacks the reconciliation:\n%s", w.Code, w.Body.String())
	}
}
