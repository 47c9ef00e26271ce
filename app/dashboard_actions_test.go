package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/immunity-app/immunity/app/github/githubtest"
	"github.com/immunity-app/immunity/pipeline/config"
	"github.com/immunity-app/immunity/store"
)

// chrome starts a headless Chromium of its own (its own profile, so its own cookies),
// driven over the DevTools protocol, closed with the test.
func chrome(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromiumBin(t)), chromedp.NoSandbox,
		chromedp.UserDataDir(t.TempDir()), chromedp.Flag("disable-gpu", true), chromedp.Flag("disable-quic", true), chromedp.Flag("disable-component-update", true))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	ctx, cancelTime := context.WithTimeout(ctx, 2*time.Minute) // the browser ends with it
	t.Cleanup(func() { cancelTime(); cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// do carries out browser actions or fails the test.
func do(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("chromium: %s: %v", what, err)
	}
}

// eval runs JavaScript in the page, awaiting a promise it returns.
func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("chromium: %s: %v", js, err)
	}
	return v
}

func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("chromium: read %s: %v", sel, err)
	}
	return s
}

// css is a CSS selector.
func css(sel string) chromedp.CSS { return chromedp.CSS(sel) }

// click clicks the element sel selects with the mouse, as chromedp.Click does, looking it
// up again when the page replaced it between the lookup and the click: the dashboard's
// live updates swap whole fragments, and a node removed before the mouse events were sent
// was not clicked, so the click is tried again (never after the events were sent).
func click(sel chromedp.CSS) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		for try := 1; ; try++ {
			_, err := chromedp.Click(sel)(ctx, t)
			if err == nil || try == 20 || !nodeReplaced(err) || ctx.Err() != nil {
				return chromedp.Void{}, err
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// nodeReplaced tells whether a click failed because its node left the document before
// the mouse was moved to it (DevTools' answers to a lookup of a removed node).
func nodeReplaced(err error) bool {
	if errors.Is(err, chromedp.ErrInvalidDimensions) { // no content quads: detached
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "No node with given id") || strings.Contains(msg, "Could not compute box model") ||
		strings.Contains(msg, "Node is detached")
}

// postFrom is JavaScript that posts a form body to path from the page and answers the
// status code.
func postFrom(path, body string) string {
	return fmt.Sprintf(`fetch(%q, {method: "POST", headers: {"Content-Type": "application/x-www-form-urlencoded"}, body: %q}).then(r => r.status)`, path, body)
}

// TestDashboardActionsInChromium drives the dashboard in real headless Chromium: an
// anonymous visitor sees no action and is refused on POST; a page on another origin can
// neither post a form to /actions nor a text/plain command to /api/commands; a signed-in
// user without a grant for production is refused and nothing changes; form posts without
// the session's CSRF token are refused; ada signs in with GitHub through the fake
// GitHub, promotes the release waiting for prod3 after confirming (the store shows it
// approved by her GitHub id, the audit log says so), locks and unlocks sandbox2; after
// sign-out her old session cookie, and an expired session, sign no one in.
func TestDashboardActionsInChromium(t *testing.T) {
	t.Parallel()
	fake := githubtest.New(t)
	contract := githubtest.LoadContract(t)
	var mu sync.Mutex
	var posts []string // "PATH STATUS" of every POST the server answered
	record := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rec := &statusRecorder{ResponseWriter: w, code: 200}
			h.ServeHTTP(rec, r)
			if r.Method == "POST" {
				mu.Lock()
				posts = append(posts, fmt.Sprintf("%s %d", r.URL.Path, rec.code))
				mu.Unlock()
			}
		})
	}
	in, base := dashboardServer(t, func(cfg *config.Config) {
		cfg.GitHub.ClientID, cfg.GitHub.ClientSecret = "Iv1.dash", "dash-secret"
		cfg.GitHub.APIURL, cfg.GitHub.WebURL = fake.APIURL(), fake.URL
		cfg.Apps[0].Access = &config.Access{
			NonProduction: []config.Grant{{Actions: []string{"*"}, GitHubUsers: []string{"ada"}, Tokens: []string{"bob"}}},
			Production:    []config.Grant{{Actions: []string{"promote", "rollback", "lock", "unlock"}, GitHubUsers: []string{"ada"}}},
		}
	}, record)
	fake.OAuthClientID, fake.OAuthClientSecret, fake.OAuthCallbackURL = "Iv1.dash", "dash-secret", base+"/signin/github/callback"
	fake.SignIn(githubtest.OAuthUser{Login: "ada", ID: 4242})
	bobToken, err := CreateToken(context.Background(), in.Store, "bob", RoleMember, "test")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	sha := strings.Repeat("3c", 20)
	in.Store.SetLive(ctx, "papi", "prod3", "host1", strings.Repeat("1a", 20))
	waiting, err := in.Store.CreateRun(ctx, store.Run{App: "papi", SHA: sha, Subject: "Cache the index", Author: "lin", State: "waiting"},
		[]string{"sandbox2", "prod3"}, map[string][]string{"sandbox2": {"host1"}, "prod3": {"host1"}})
	if err != nil {
		t.Fatal(err)
	}
	in.Store.UpdateStage(ctx, waiting.Stages[0].ID, store.StageUpdate{State: "succeeded"})
	in.Store.UpdateStage(ctx, waiting.Stages[1].ID, store.StageUpdate{State: "awaiting_approval", Message: "ready for prod3"})
	prod3 := func() store.Stage {
		t.Helper()
		r, err := in.Store.Run(ctx, waiting.ID)
		if err != nil {
			t.Fatal(err)
		}
		return r.Stages[1]
	}
	unchanged := func(what string) {
		t.Helper()
		if st := prod3(); st.State != "awaiting_approval" || st.ApprovedByID != "" {
			t.Fatalf("%s changed prod3: %+v", what, st)
		}
		if l, err := in.Store.Lock(ctx, "papi", "sandbox2"); err == nil {
			t.Fatalf("%s locked sandbox2: %+v", what, l)
		}
	}
	postsSince := func(n int) []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), posts[n:]...)
	}
	nPosts := func() int { mu.Lock(); defer mu.Unlock(); return len(posts) }

	// Anonymous: the dashboard shows the waiting release but no button, and a post is refused.
	anon := chrome(t)
	do(t, anon, "open the dashboard", chromedp.Navigate(base+"/"), chromedp.WaitVisible(css("#region-papi-prod3")))
	forms := eval[int](t, anon, `document.querySelectorAll('form[action="/actions"], button[id^="promote-"]').length`)
	if forms != 0 {
		t.Errorf("an anonymous visitor sees %d action forms", forms)
	}
	code := eval[int](t, anon, postFrom("/actions", "action=promote&app=papi&region=prod3&confirm=yes&csrf=guess"))
	if code != 401 {
		t.Errorf("anonymous POST /actions: %d, want 401", code)
	}
	unchanged("an anonymous post")

	// Bob signs in with his token; he may act on sandbox2 but not promote production.
	bob := chrome(t)
	do(t, bob, "bob signs in with a token", chromedp.Navigate(base+"/signin"), chromedp.WaitVisible(css(`input[name="token"]`)),
		chromedp.SendKeys(css(`input[name="token"]`), bobToken), chromedp.Submit(css(`input[name="token"]`)),
		chromedp.WaitVisible(css("#promote-papi-prod3")))
	do(t, bob, "bob presses Promote", click(css("#promote-papi-prod3")), chromedp.WaitVisible(css("#confirm")))
	if s := text(t, bob, ".confirm"); !strings.Contains(s, "production region") || !strings.Contains(s, "promote papi prod3 --release "+sha) {
		t.Errorf("confirmation page: %q", s)
	}
	unchanged("a confirmation page")
	do(t, bob, "bob confirms", click(css("#confirm")), chromedp.WaitVisible(css("#outcome")))
	if o, r := text(t, bob, "#outcome"), text(t, bob, "#reply"); o != "Refused" || !strings.Contains(r, "bob may not promote papi/prod3") {
		t.Errorf("bob's promote: %q %q", o, r)
	}
	unchanged("bob's refused promote")
	if a, _ := in.Store.Audits(ctx, "papi", 1); len(a) != 1 || a[0].ActorID != "token:bob" || a[0].Action != "promote" || a[0].Outcome != "refused" || a[0].Via != "dashboard" {
		t.Errorf("audit of bob's promote: %+v", a)
	}
	// Form posts of a signed-in session without its CSRF token, or with another, are refused.
	do(t, bob, "back to the dashboard", chromedp.Navigate(base+"/"), chromedp.WaitVisible(css("#lock-papi-sandbox2")))
	code = eval[int](t, bob, postFrom("/actions", "action=lock&app=papi&region=sandbox2&reason=x"))
	if code != 403 {
		t.Errorf("lock without a CSRF token: %d, want 403", code)
	}
	code = eval[int](t, bob, postFrom("/actions", "action=lock&app=papi&region=sandbox2&reason=x&csrf=not-the-sessions"))
	if code != 403 {
		t.Errorf("lock with a wrong CSRF token: %d, want 403", code)
	}
	unchanged("posts without the CSRF token")

	// A page on another origin, opened in bob's signed-in browser, posts a form to /actions
	// (with bob's cookie) and a text/plain command to /api/commands: both refused.
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><body><form id="f" method="post" action="%s/actions"><input name="action" value="lock"><input name="app" value="papi">
<input name="region" value="sandbox2"><input name="reason" value="pwned"><input name="confirm" value="yes"></form>
<script>fetch(%q, {method: "POST", mode: "no-cors", headers: {"Content-Type": "text/plain"}, body: '{"text":"lock papi sandbox2 pwned"}'})
.then(() => { document.title = "sent"; document.getElementById("f").submit(); });</script></body>`, base, base+"/api/commands")
	}))
	defer evil.Close()
	before := nPosts()
	do(t, bob, "open a page of another origin", chromedp.Navigate(evil.URL+"/"))
	deadline := time.Now().Add(30 * time.Second)
	for len(postsSince(before)) < 2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	got := postsSince(before)
	if len(got) != 2 || !contains(got, "/api/commands 403") || !contains(got, "/actions 403") {
		t.Errorf("posts from another origin were answered %v, want /api/commands 403 and /actions 403", got)
	}
	unchanged("posts from another origin")

	// Ada signs in with GitHub (through the fake GitHub) and promotes, after confirming.
	ada := chrome(t)
	do(t, ada, "ada signs in with GitHub", chromedp.Navigate(base+"/signin"), click(css(`a[href^="/signin/github"]`)),
		chromedp.WaitVisible(css("#promote-papi-prod3")))
	if me := text(t, ada, ".me"); !strings.Contains(me, "ada") || !strings.Contains(me, "Sign out") {
		t.Errorf("header after GitHub sign-in: %q", me)
	}
	do(t, ada, "ada presses Promote", click(css("#promote-papi-prod3")), chromedp.WaitVisible(css("#confirm")))
	do(t, ada, "ada confirms", click(css("#confirm")), chromedp.WaitVisible(css("#outcome")))
	if o, r := text(t, ada, "#outcome"), text(t, ada, "#reply"); o != "Done" || !strings.Contains(r, "promoted") {
		t.Errorf("ada's promote: %q %q", o, r)
	}
	if st := prod3(); st.State != "approved" || st.ApprovedByID != "github:4242" || st.ApprovedBy != "ada" || st.ApprovedVia != "dashboard" {
		t.Errorf("prod3 after ada's promote: %+v", st)
	}
	if a, _ := in.Store.Audits(ctx, "papi", 1); len(a) != 1 || a[0].ActorID != "github:4242" || a[0].Action != "promote" || a[0].Outcome != "ok" {
		t.Errorf("audit of ada's promote: %+v", a)
	}
	// sandbox2 is not production: Lock acts at once, and the answer is on the page.
	do(t, ada, "ada locks sandbox2", chromedp.Navigate(base+"/"), chromedp.WaitVisible(css("#lock-papi-sandbox2")),
		chromedp.SendKeys(css(`#region-papi-sandbox2 input[name="reason"]`), "flaky tests"),
		click(css("#lock-papi-sandbox2")), chromedp.WaitVisible(css("#outcome")))
	if l, err := in.Store.Lock(ctx, "papi", "sandbox2"); err != nil || l.HolderID != "github:4242" || l.Reason != "flaky tests" || text(t, ada, "#outcome") != "Done" {
		t.Fatalf("lock from the dashboard: %+v, %v, page %q", l, err, text(t, ada, "#reply"))
	}
	do(t, ada, "ada unlocks sandbox2", chromedp.Navigate(base+"/"), click(css("#unlock-papi-sandbox2")), chromedp.WaitVisible(css("#outcome")))
	if _, err := in.Store.Lock(ctx, "papi", "sandbox2"); err == nil {
		t.Errorf("sandbox2 still locked after Unlock: %q", text(t, ada, "#reply"))
	}

	// Signed out, ada's old session cookie replayed, and an expired session, sign no one in.
	var old string
	do(t, ada, "read the session cookie", func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		res, err := cdp.Call(ctx, tg, network.GetCookies, network.GetCookiesParams{URLs: []string{base}})
		for _, c := range res.Cookies {
			if c.Name == sessionCookie {
				old = c.Value
				if !c.HTTPOnly || c.SameSite != network.CookieSameSiteLax {
					t.Errorf("session cookie in the browser: %+v", c)
				}
			}
		}
		return chromedp.Void{}, err
	})
	do(t, ada, "ada signs out", chromedp.Navigate(base+"/"), click(css(`form[action="/signout"] button`)),
		chromedp.WaitVisible(css(`a[href="/signin"]`)))
	who := `{"ID":"github:4242","Name":"ada","Via":"dashboard","GitHubLogin":"ada","GitHubID":4242}`
	if err := in.Store.PutSession(ctx, store.Session{Hash: hashToken("expired-cookie"), Actor: who, CSRF: "c", Expires: time.Now().Add(-time.Minute)}); err != nil {
		t.Fatal(err)
	}
	for name, value := range map[string]string{"replayed": old, "expired": "expired-cookie"} {
		do(t, ada, "set the "+name+" cookie", func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
			httpOnly := true
			_, err := cdp.Call(ctx, tg, network.SetCookie, network.SetCookieParams{Name: sessionCookie, Value: value, URL: base, HTTPOnly: &httpOnly})
			return chromedp.Void{}, err
		}, chromedp.Navigate(base+"/"), chromedp.WaitVisible(css("#region-papi-prod3")))
		forms = eval[int](t, ada, `document.querySelectorAll('form[action="/actions"]').length`)
		if forms != 0 || !strings.Contains(text(t, ada, ".me"), "Sign in") {
			t.Errorf("%s session shows %d action forms, header %q", name, forms, text(t, ada, ".me"))
		}
		code = eval[int](t, ada, postFrom("/actions", "action=lock&app=papi&region=sandbox2&reason=x&csrf=c"))
		if code != 401 {
			t.Errorf("%s session's post: %d, want 401", name, code)
		}
	}
	if l, err := in.Store.Lock(ctx, "papi", "sandbox2"); err == nil {
		t.Errorf("an ended session locked sandbox2: %+v", l)
	}
	contract.ValidateAll(t, fake)
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.code = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
