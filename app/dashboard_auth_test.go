package app

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/immunity-app/immunity/app/github/githubtest"
	"github.com/immunity-app/immunity/pipeline"
	"github.com/immunity-app/immunity/pipeline/config"
	"github.com/immunity-app/immunity/store"
)

// dashboardServer opens an Instance (dashboardConfig, changed by edit once its URL is
// known) and serves it on 127.0.0.1, through the wrap handlers.
func dashboardServer(t *testing.T, edit func(cfg *config.Config), wrap ...func(http.Handler) http.Handler) (*Instance, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	dir := t.TempDir()
	cfg, err := config.Parse(filepath.Join(dir, "immunity.yml"), []byte(dashboardConfig))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Server.URL = base
	if edit != nil {
		edit(cfg)
	}
	in, err := Open(context.Background(), Options{Config: cfg, Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	h := in.Server.Handler()
	for _, w := range wrap {
		h = w(h)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(func() { srv.Close(); in.Store.Close() })
	return in, base
}

// webClient is an HTTP client with a cookie jar that does not follow redirects.
type webClient struct {
	t  *testing.T
	c  *http.Client
	to string // the last redirect's Location
}

func newBrowser(t *testing.T) *webClient {
	jar, _ := cookiejar.New(nil)
	return &webClient{t: t, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *webClient) do(method, u string, form url.Values, headers ...string) (*http.Response, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, u, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	b.to = resp.Header.Get("Location")
	return resp, string(out)
}

func (b *webClient) cookie(base, name string) string {
	u, _ := url.Parse(base + "/signin")
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

// setCookie finds a Set-Cookie of the response by name.
func setCookie(resp *http.Response, name string) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// TestGitHubSignInThroughTheFake: "Sign in with GitHub" goes authorize → code → token →
// GET /user against the fake GitHub, which refuses what GitHub refuses; the session is
// the GitHub user id (login for display), its cookie HttpOnly and SameSite=Lax, and the
// audit log records the sign-in under that id. A callback whose state is not this
// browser's makes no session.
func TestGitHubSignInThroughTheFake(t *testing.T) {
	t.Parallel()
	fake := githubtest.New(t)
	contract := githubtest.LoadContract(t)
	in, base := dashboardServer(t, func(cfg *config.Config) {
		cfg.GitHub.ClientID, cfg.GitHub.ClientSecret = "Iv1.dash", "dash-secret"
		cfg.GitHub.APIURL, cfg.GitHub.WebURL = fake.APIURL(), fake.URL
	})
	fake.OAuthClientID, fake.OAuthClientSecret, fake.OAuthCallbackURL = "Iv1.dash", "dash-secret", base+"/signin/github/callback"
	fake.SignIn(githubtest.OAuthUser{Login: "ada", ID: 4242})

	b := newBrowser(t)
	if _, page := b.do("GET", base+"/signin", nil); !strings.Contains(page, `href="/signin/github?next=%2f"`) {
		t.Fatalf("sign-in page offers no GitHub sign-in:\n%s", page)
	}
	// A forged callback (someone else's code, a made-up state) is refused.
	if resp, _ := b.do("GET", base+"/signin/github/callback?code=code1&state=forged", nil); resp.StatusCode != 400 {
		t.Errorf("forged callback: %d, want 400", resp.StatusCode)
	}
	resp, _ := b.do("GET", base+"/signin/github?next=/runs/1", nil)
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(b.to, fake.URL+"/login/oauth/authorize?") {
		t.Fatalf("sign-in with GitHub: %d to %q", resp.StatusCode, b.to)
	}
	authorize, _ := url.Parse(b.to)
	q := authorize.Query()
	if q.Get("client_id") != "Iv1.dash" || q.Get("redirect_uri") != base+"/signin/github/callback" || q.Get("state") == "" ||
		q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" {
		t.Fatalf("authorize query: %v", q)
	}
	if ck := setCookie(resp, oauthCookie); ck == nil || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || strings.Contains(ck.Value, q.Get("code_challenge")) {
		t.Fatalf("state cookie: %+v", ck)
	}
	b.do("GET", b.to, nil) // GitHub: signed in, consents, sends the browser back
	callback := b.to
	if !strings.HasPrefix(callback, base+"/signin/github/callback?") {
		t.Fatalf("GitHub sent the browser to %q", callback)
	}
	resp, _ = b.do("GET", callback, nil)
	if resp.StatusCode != http.StatusSeeOther || b.to != "/runs/1" {
		t.Fatalf("callback: %d to %q", resp.StatusCode, b.to)
	}
	ck := setCookie(resp, sessionCookie)
	if ck == nil || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Secure || ck.Path != "/" || ck.MaxAge != int(sessionTTL/time.Second) {
		t.Fatalf("session cookie: %+v", ck)
	}
	se, err := in.Store.SessionByHash(context.Background(), hashToken(ck.Value))
	var who pipeline.Actor
	if err != nil || json.Unmarshal([]byte(se.Actor), &who) != nil || who.ID != "github:4242" || who.GitHubLogin != "ada" || who.Via != "dashboard" {
		t.Fatalf("stored session: %+v (%+v), %v", se, who, err)
	}
	if se.Hash == ck.Value {
		t.Fatal("the session's cookie value is stored as it is")
	}
	if _, page := b.do("GET", base+"/", nil); !strings.Contains(page, `title="github:4242">ada</span>`) || !strings.Contains(page, "Sign out") {
		t.Errorf("home page of a signed-in person:\n%s", page)
	}
	// The callback is used once: its state cookie is gone, so replaying it is refused.
	if resp, _ := b.do("GET", callback, nil); resp.StatusCode != 400 {
		t.Errorf("replayed callback: %d, want 400", resp.StatusCode)
	}
	audit, _ := in.Store.Audits(context.Background(), "", 10)
	if len(audit) == 0 || audit[0].Action != "sign in" || audit[0].ActorID != "github:4242" || audit[0].Outcome != "ok" {
		t.Errorf("audit: %+v", audit)
	}
	contract.ValidateAll(t, fake)

	// GitHub answering that the person said no makes no session, and says so.
	other := newBrowser(t)
	other.do("GET", base+"/signin/github", nil)
	to, _ := url.Parse(other.to)
	resp, page := other.do("GET", base+"/signin/github/callback?error=access_denied&error_description=declined&state="+url.QueryEscape(to.Query().Get("state")), nil)
	if resp.StatusCode != 401 || !strings.Contains(page, "GitHub answered access_denied: declined") || setCookie(resp, sessionCookie) != nil {
		t.Errorf("declined sign-in: %d\n%s", resp.StatusCode, page)
	}
}

// TestTokenSignInSessionsAndCSRF: a personal token signs in to the dashboard (the sign-in
// form carries a CSRF token of its own); sign-out needs the session's CSRF token, deletes
// the session, and its cookie replayed is anonymous again; an expired session and a
// session of a revoked token sign no one in.
func TestTokenSignInSessionsAndCSRF(t *testing.T) {
	t.Parallel()
	in, base := dashboardServer(t, nil)
	ctx := context.Background()
	tok, err := CreateToken(ctx, in.Store, "root", RoleAdmin, "test")
	if err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t)
	_, page := b.do("GET", base+"/signin?next=/runs/1", nil)
	if strings.Contains(page, "Sign in with GitHub") {
		t.Error("GitHub sign-in offered without an OAuth client")
	}
	m := csrfField.FindStringSubmatch(page)
	if m == nil || b.cookie(base, signinCookie) != m[1] {
		t.Fatalf("sign-in form without its CSRF token:\n%s", page)
	}
	for _, c := range []struct {
		name string
		form url.Values
		code int
	}{
		{"no CSRF token", url.Values{"token": {tok}}, 403},
		{"a wrong CSRF token", url.Values{"token": {tok}, "csrf": {"x" + m[1]}}, 403},
		{"a wrong token", url.Values{"token": {"imm_nope"}, "csrf": {m[1]}}, 401},
	} {
		if resp, body := b.do("POST", base+"/signin/token", c.form); resp.StatusCode != c.code || setCookie(resp, sessionCookie) != nil {
			t.Errorf("%s: %d, want %d and no session\n%s", c.name, resp.StatusCode, c.code, body)
		}
	}
	resp, _ := b.do("POST", base+"/signin/token", url.Values{"token": {tok}, "csrf": {m[1]}, "next": {"/runs/1"}})
	if resp.StatusCode != http.StatusSeeOther || b.to != "/runs/1" || setCookie(resp, sessionCookie) == nil {
		t.Fatalf("token sign-in: %d to %q", resp.StatusCode, b.to)
	}
	session := setCookie(resp, sessionCookie).Value
	_, page = b.do("GET", base+"/", nil)
	m = csrfField.FindStringSubmatch(page)
	if m == nil || !strings.Contains(page, `title="token:root">root</span>`) {
		t.Fatalf("home page signed in with a token:\n%s", page)
	}
	if resp, _ := b.do("POST", base+"/signout", url.Values{}); resp.StatusCode != 403 {
		t.Errorf("sign-out without the CSRF token: %d, want 403", resp.StatusCode)
	}
	if resp, _ := b.do("POST", base+"/signout", url.Values{"csrf": {m[1]}}, "Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site"); resp.StatusCode != 403 {
		t.Errorf("sign-out from another origin: %d, want 403", resp.StatusCode)
	}
	if _, err := in.Store.SessionByHash(ctx, hashToken(session)); err != nil {
		t.Fatalf("a refused sign-out ended the session: %v", err)
	}
	if resp, _ := b.do("POST", base+"/signout", url.Values{"csrf": {m[1]}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-out: %d", resp.StatusCode)
	}
	if _, err := in.Store.SessionByHash(ctx, hashToken(session)); err == nil {
		t.Fatal("the session outlived its sign-out")
	}
	// The old cookie, replayed, is nobody. (The page may name token:root elsewhere: the
	// history and audit show who signed in and out; the header says who is viewing.)
	const signedInAsRoot = `<span class="me"><span title="token:root">`
	replay := func(cookie string) string {
		t.Helper()
		_, page := newBrowser(t).do("GET", base+"/", nil, "Cookie", sessionCookie+"="+cookie)
		return page
	}
	if page := replay(session); !strings.Contains(page, `<span class="me"><a href="/signin">Sign in</a>`) || strings.Contains(page, signedInAsRoot) {
		t.Errorf("replayed session after sign-out is signed in:\n%s", page)
	}
	// An expired session is nobody, and so is one whose token was revoked.
	who, _ := json.Marshal(tokenActor(store.Token{Name: "root", Role: RoleAdmin}, "dashboard"))
	for _, se := range []store.Session{
		{Hash: hashToken("expired"), Actor: string(who), Token: "root", CSRF: "c1", Expires: time.Now().Add(-time.Second)},
		{Hash: hashToken("revoked"), Actor: string(who), Token: "root", CSRF: "c2", Expires: time.Now().Add(time.Hour)},
	} {
		if err := in.Store.PutSession(ctx, se); err != nil {
			t.Fatal(err)
		}
	}
	if page := replay("revoked"); !strings.Contains(page, signedInAsRoot) {
		t.Fatalf("a session in force is not signed in:\n%s", page)
	}
	if err := in.Store.RevokeToken(ctx, "root"); err != nil {
		t.Fatal(err)
	}
	for _, ck := range []string{"expired", "revoked"} {
		if page := replay(ck); strings.Contains(page, signedInAsRoot) {
			t.Errorf("%s session signs in:\n%s", ck, page)
		}
	}
	// Sign-in never sends the browser to another site. Browsers drop tabs and newlines
	// from a URL and read a backslash as a slash.
	for _, next := range []string{"https://evil.example/", "//evil.example/", "/\\evil.example", "/\t/evil.example", "/\n/evil.example", "/\r/evil.example", "/\x00/evil.example"} {
		if got := localPath(next); got != "/" {
			t.Errorf("localPath(%q) = %q", next, got)
		}
	}
	tok2, err := CreateToken(ctx, in.Store, "root2", RoleAdmin, "test")
	if err != nil {
		t.Fatal(err)
	}
	b = newBrowser(t)
	_, page = b.do("GET", base+"/signin?next="+url.QueryEscape("/\t/evil.example"), nil)
	m = csrfField.FindStringSubmatch(page)
	resp, _ = b.do("POST", base+"/signin/token", url.Values{"token": {tok2}, "csrf": {m[1]}, "next": {"/\t/evil.example"}})
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || loc != "/" {
		t.Errorf("sign-in asked to go on to /\\t/evil.example: %d to %q; want / (a browser reads that path as //evil.example)", resp.StatusCode, loc)
	}
}

// TestSecureCookiesBehindHTTPS: with an https server URL, the session cookie is Secure.
func TestSecureCookiesBehindHTTPS(t *testing.T) {
	t.Parallel()
	in, base := dashboardServer(t, func(cfg *config.Config) { cfg.Server.URL = "https://immunity.example.com" })
	tok, err := CreateToken(context.Background(), in.Store, "ada", RoleMember, "test")
	if err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t)
	resp, page := b.do("GET", base+"/signin", nil)
	if ck := setCookie(resp, "__Secure-"+signinCookie); ck == nil || !ck.Secure || ck.Path != "/signin" {
		t.Fatalf("sign-in form cookie: %+v", ck)
	}
	csrf := csrfField.FindStringSubmatch(page)[1]
	// Each request below is sent by a fresh client with the cookie set by hand.
	// The unprefixed name, which any host of the domain or plain http could set, is not read.
	if resp, _ := newBrowser(t).do("POST", base+"/signin/token", url.Values{"token": {tok}, "csrf": {csrf}}, "Cookie", signinCookie+"="+csrf); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("sign-in with the unprefixed cookie: %d; want 403", resp.StatusCode)
	}
	resp, _ = newBrowser(t).do("POST", base+"/signin/token", url.Values{"token": {tok}, "csrf": {csrf}}, "Cookie", "__Secure-"+signinCookie+"="+csrf)
	ck := setCookie(resp, "__Host-"+sessionCookie)
	if ck == nil || !ck.Secure || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/" || ck.Domain != "" {
		t.Fatalf("session cookie behind https: %d %+v", resp.StatusCode, ck)
	}
	// The session is read by its prefixed name only.
	if _, page := newBrowser(t).do("GET", base+"/", nil, "Cookie", "__Host-"+sessionCookie+"="+ck.Value); !strings.Contains(page, "Sign out") {
		t.Fatal("the __Host- session cookie does not sign in")
	}
	if _, page := newBrowser(t).do("GET", base+"/", nil, "Cookie", sessionCookie+"="+ck.Value); strings.Contains(page, "Sign out") {
		t.Fatal("the unprefixed session cookie signs in behind https")
	}
}

// TestLogsNeedSignInBeyondLoopback: on a server reachable beyond loopback, the run page,
// its fragments and the API's run (logs and test output), the audit and a region's page
// (who did what) need a signed-in caller; the
// overview stays open, without its audit entries. On loopback only (the demo), they are open.
func TestLogsNeedSignInBeyondLoopback(t *testing.T) {
	t.Parallel()
	in, base := dashboardServer(t, nil)
	fillDashboard(t, in)
	anon := newBrowser(t)
	if resp, page := anon.do("GET", base+"/runs/1", nil); resp.StatusCode != 200 || !strings.Contains(page, "TestSearch") {
		t.Fatalf("run page on loopback: %d", resp.StatusCode)
	}
	in.Server.notePrivate(fakeListener{&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}})
	if in.Server.auth.private.Load() {
		t.Fatal("a loopback listener made logs private")
	}
	in.Server.notePrivate(fakeListener{&net.TCPAddr{IP: net.IPv4zero}})
	if !in.Server.auth.private.Load() {
		t.Fatal("a listener on every address left logs open")
	}
	for _, p := range []string{"/runs/1", "/ui/runs/1", "/ui/runs/1/log", "/audit", "/ui/audit", "/regions/papi/sandbox2", "/ui/regions/papi/sandbox2"} {
		resp, page := anon.do("GET", base+p, nil)
		if resp.StatusCode != http.StatusSeeOther || anon.to != "/signin?next="+url.QueryEscape(p) || strings.Contains(page, "TestSearch") {
			t.Errorf("anonymous %s: %d to %q", p, resp.StatusCode, anon.to)
		}
	}
	if resp, page := anon.do("GET", base+"/api/runs/1", nil); resp.StatusCode != 401 || strings.Contains(page, "TestSearch") {
		t.Errorf("anonymous /api/runs/1: %d", resp.StatusCode)
	}
	if resp, _ := anon.do("GET", base+"/api/audit", nil); resp.StatusCode != 401 {
		t.Errorf("anonymous /api/audit: %d", resp.StatusCode)
	}
	// The list of runs is open, without the stages' test output and who approved them.
	if resp, page := anon.do("GET", base+"/api/runs?limit=500", nil); resp.StatusCode != 200 || !strings.Contains(page, `"App":"papi"`) || strings.Contains(page, "TestSearch") || strings.Contains(page, `"ApprovedByID":"github`) {
		t.Errorf("anonymous /api/runs: %d\n%s", resp.StatusCode, page)
	}
	for _, limit := range []string{"0", "-1", "abc", "1001"} {
		if resp, page := anon.do("GET", base+"/api/runs?limit="+limit, nil); resp.StatusCode != 400 || !strings.Contains(page, "expected a number of runs from 1 to 1000") {
			t.Errorf("/api/runs?limit=%s: %d %s; want 400", limit, resp.StatusCode, page)
		}
	}
	in.Engine.Audit(t.Context(), pipeline.Actor{ID: "github:7", Name: "bob", Via: "github"}, "rollback", "papi", "prod3", "", "", "refused", "bob may not roll back papi/prod3")
	if resp, page := anon.do("GET", base+"/", nil); resp.StatusCode != 200 || !strings.Contains(page, "papi") || strings.Contains(page, "bob may not") || !strings.Contains(page, "Who did what is shown once you") {
		t.Errorf("overview: %d; want the regions without the audit log", resp.StatusCode)
	}
	// The delivery report (figures, runs and releases; no logs) is open like the overview.
	if resp, page := anon.do("GET", base+"/report/papi", nil); resp.StatusCode != 200 || !strings.Contains(page, "change failure rate") {
		t.Errorf("anonymous /report/papi: %d", resp.StatusCode)
	}
	if resp, _ := anon.do("GET", base+"/api/report?app=papi", nil); resp.StatusCode != 200 {
		t.Errorf("anonymous /api/report: %d", resp.StatusCode)
	}
	tok, _ := CreateToken(context.Background(), in.Store, "ci", RoleMember, "test")
	if resp, page := anon.do("GET", base+"/api/runs/1", nil, "Authorization", "Bearer "+tok); resp.StatusCode != 200 || !strings.Contains(page, "TestSearch") {
		t.Errorf("/api/runs/1 with a token: %d", resp.StatusCode)
	}
	_, page := anon.do("GET", base+"/signin", nil)
	anon.do("POST", base+"/signin/token", url.Values{"token": {tok}, "csrf": {csrfField.FindStringSubmatch(page)[1]}})
	if resp, page := anon.do("GET", base+"/runs/1", nil); resp.StatusCode != 200 || !strings.Contains(page, "TestSearch") {
		t.Errorf("run page signed in: %d", resp.StatusCode)
	}
	if resp, page := anon.do("GET", base+"/api/runs", nil); resp.StatusCode != 200 || !strings.Contains(page, "TestSearch") {
		t.Errorf("/api/runs signed in: %d; want the test output", resp.StatusCode)
	}
	if resp, page := anon.do("GET", base+"/audit", nil); resp.StatusCode != 200 || !strings.Contains(page, "sign in") {
		t.Errorf("audit page signed in: %d", resp.StatusCode)
	}
	if resp, page := anon.do("GET", base+"/", nil); resp.StatusCode != 200 || !strings.Contains(page, "bob may not") {
		t.Errorf("overview signed in: %d; want its audit log", resp.StatusCode)
	}
}

// fakeListener is a listener that is only an address (notePrivate reads nothing else).
type fakeListener struct{ addr net.Addr }

func (fakeListener) Accept() (net.Conn, error) { return nil, net.ErrClosed }
func (fakeListener) Close() error              { return nil }
func (l fakeListener) Addr() net.Addr          { return l.addr }

// signIn signs a fresh browser in with a new admin token and returns it with the
// session's CSRF token.
func signIn(t *testing.T, in *Instance, base, name string) (*webClient, string) {
	t.Helper()
	tok, err := CreateToken(t.Context(), in.Store, name, RoleAdmin, "test")
	if err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t)
	_, page := b.do("GET", base+"/signin", nil)
	b.do("POST", base+"/signin/token", url.Values{"token": {tok}, "csrf": {csrfField.FindStringSubmatch(page)[1]}})
	_, page = b.do("GET", base+"/", nil)
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		t.Fatal("not signed in")
	}
	return b, m[1]
}

// TestProductionActionsAreConfirmedWhateverTheCase: commands take a region's name in any
// case, and so a dashboard action on PROD3 is confirmed first like one on prod3.
func TestProductionActionsAreConfirmedWhateverTheCase(t *testing.T) {
	t.Parallel()
	in, base := dashboardServer(t, nil)
	b, csrf := signIn(t, in, base, "root")
	for _, region := range []string{"prod3", "PROD3", "Prod3"} {
		resp, page := b.do("POST", base+"/actions", url.Values{"csrf": {csrf}, "action": {"lock"}, "app": {"papi"}, "region": {region}, "reason": {"db migration"}})
		if resp.StatusCode != 200 || !strings.Contains(page, `id="confirm"`) {
			t.Errorf("lock %s: %d without a confirmation page", region, resp.StatusCode)
		}
		if l, err := in.Store.Lock(t.Context(), "papi", "prod3"); err == nil {
			t.Fatalf("lock %s unconfirmed locked prod3: %+v", region, l)
		}
	}
}

// TestGitHubSetupNeedsTheOperatorBeyondLoopback: the GitHub App's setup writes the App's
// credentials into data_dir, so beyond loopback only an admin reaches it: anyone else is
// sent to sign in or refused, and a member is refused; on loopback it is open, as the
// other views.
func TestGitHubSetupNeedsTheOperatorBeyondLoopback(t *testing.T) {
	t.Parallel()
	in, base := dashboardServer(t, nil)
	anon := newBrowser(t)
	if resp, page := anon.do("GET", base+"/github/setup", nil); resp.StatusCode != 200 || !strings.Contains(page, `action="/github/setup"`) {
		t.Fatalf("setup page on loopback: %d", resp.StatusCode)
	}
	in.Server.notePrivate(fakeListener{&net.TCPAddr{IP: net.IPv4zero}})
	if resp, _ := anon.do("GET", base+"/github/setup", nil); resp.StatusCode != http.StatusSeeOther || anon.to != "/signin?next=%2Fgithub%2Fsetup" {
		t.Errorf("anonymous setup page beyond loopback: %d to %q; want sign-in", resp.StatusCode, anon.to)
	}
	if resp, page := anon.do("POST", base+"/github/setup", url.Values{"name": {"Mallory's app"}}); resp.StatusCode != http.StatusForbidden || strings.Contains(page, "settings/apps/new") {
		t.Errorf("anonymous setup start beyond loopback: %d; want 403", resp.StatusCode)
	}
	tok, err := CreateToken(t.Context(), in.Store, "bob", RoleMember, "test")
	if err != nil {
		t.Fatal(err)
	}
	member := newBrowser(t)
	_, page := member.do("GET", base+"/signin", nil)
	member.do("POST", base+"/signin/token", url.Values{"token": {tok}, "csrf": {csrfField.FindStringSubmatch(page)[1]}})
	if resp, _ := member.do("GET", base+"/github/setup", nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a member's setup page: %d; want 403", resp.StatusCode)
	}
	admin, _ := signIn(t, in, base, "root")
	if resp, page := admin.do("GET", base+"/github/setup", nil); resp.StatusCode != 200 || !strings.Contains(page, `action="/github/setup"`) {
		t.Errorf("the admin's setup page: %d", resp.StatusCode)
	}
	if resp, page := admin.do("POST", base+"/github/setup", url.Values{"name": {"Immunity"}}); resp.StatusCode != 200 || !strings.Contains(page, "settings/apps/new") {
		t.Errorf("the admin's setup start: %d", resp.StatusCode)
	}
}

// TestLogsNeedSignInBehindAProxy: a server on loopback whose server.url names another host
// (a reverse proxy in front of it) is reached from beyond this machine: its logs, test
// output and audit need sign-in as if it listened there itself; a URL on this machine
// leaves them open.
func TestLogsNeedSignInBehindAProxy(t *testing.T) {
	t.Parallel()
	for url, private := range map[string]bool{"https://immunity.example.com": true, "http://10.0.3.2:3102": true, "http://localhost:3102": false, "http://127.0.0.1:3102/": false, "http://[::1]:3102": false} {
		in, base := dashboardServer(t, func(cfg *config.Config) { cfg.Server.URL = url })
		fillDashboard(t, in)
		resp, page := newBrowser(t).do("GET", base+"/runs/1", nil)
		if open := resp.StatusCode == 200 && strings.Contains(page, "TestSearch"); open == private {
			t.Errorf("server.url %s: the run page answered %d to an anonymous visitor; want it private: %v", url, resp.StatusCode, private)
		}
	}
}
