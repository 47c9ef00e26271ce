package githubtest

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestFakeOAuthWebFlow: the fake answers GitHub's web sign-in flow as GitHub does: a
// redirect_uri other than the registered callback is sent back to the callback as
// redirect_uri_mismatch, a code is exchanged once and only with the client's secret, a body
// that is not a form is refused, a PKCE code needs its verifier, and GET /user answers the token's user.
func TestFakeOAuthWebFlow(t *testing.T) {
	t.Parallel()
	fake := New(t)
	const callback = "http://127.0.0.1:1/signin/github/callback"
	fake.OAuthClientID, fake.OAuthClientSecret, fake.OAuthCallbackURL = "Iv1.client", "sekrit", callback
	fake.SignIn(OAuthUser{Login: "ada", ID: 4242})
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	authorize := func(q url.Values) url.Values {
		t.Helper()
		resp, err := noFollow.Get(fake.URL + "/login/oauth/authorize?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusFound {
			t.Fatalf("authorize %v: %d, want 302", q, resp.StatusCode)
		}
		to, _ := url.Parse(resp.Header.Get("Location"))
		if got := to.Scheme + "://" + to.Host + to.Path; got != callback {
			t.Fatalf("authorize %v sent the browser to %s, want the callback", q, got)
		}
		return to.Query()
	}
	exchange := func(body string) map[string]string {
		t.Helper()
		req, _ := http.NewRequest("POST", fake.URL+"/login/oauth/access_token", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Accept", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		m := map[string]string{}
		json.NewDecoder(resp.Body).Decode(&m)
		return m
	}

	if resp, _ := noFollow.Get(fake.URL + "/login/oauth/authorize?client_id=other&redirect_uri=" + url.QueryEscape(callback)); resp.StatusCode != 404 {
		t.Errorf("unknown client: %d, want 404", resp.StatusCode)
	}
	bad := authorize(url.Values{"client_id": {"Iv1.client"}, "redirect_uri": {"https://evil.example/steal"}, "state": {"s1"}})
	if bad.Get("error") != "redirect_uri_mismatch" || bad.Get("code") != "" || bad.Get("state") != "s1" {
		t.Errorf("foreign redirect_uri: %v, want redirect_uri_mismatch without a code", bad)
	}
	got := authorize(url.Values{"client_id": {"Iv1.client"}, "redirect_uri": {callback}, "state": {"s2"}})
	code := got.Get("code")
	if code == "" || got.Get("state") != "s2" {
		t.Fatalf("authorize: %v, want a code and the state", got)
	}
	if m := exchange("client_id=Iv1.client&client_secret=wrong&code=" + code); m["error"] != "incorrect_client_credentials" {
		t.Errorf("wrong secret: %v", m)
	}
	if m := exchange("client_id=Iv1.client&client_secret=sekrit&code=%zz"); m["error"] != "invalid_request" {
		t.Errorf("malformed form: %v, want invalid_request", m)
	}
	// A refused exchange used the code up, as GitHub's one-time codes are.
	if m := exchange("client_id=Iv1.client&client_secret=sekrit&code=" + code); m["error"] != "bad_verification_code" {
		t.Errorf("code after a refused exchange: %v", m)
	}
	code = authorize(url.Values{"client_id": {"Iv1.client"}, "state": {"s3"}}).Get("code")
	tok := exchange("client_id=Iv1.client&client_secret=sekrit&redirect_uri=" + url.QueryEscape(callback) + "&code=" + code)
	if tok["access_token"] == "" || tok["token_type"] != "bearer" {
		t.Fatalf("exchange: %v", tok)
	}
	if m := exchange("client_id=Iv1.client&client_secret=sekrit&code=" + code); m["error"] != "bad_verification_code" {
		t.Errorf("reused code: %v", m)
	}

	// PKCE: a code asked for with a challenge is redeemed only with its verifier.
	verifier := "a-verifier-of-at-least-forty-three-characters-long"
	pkce := url.Values{"client_id": {"Iv1.client"}, "code_challenge": {pkceChallenge(verifier)}, "code_challenge_method": {"S256"}}
	code = authorize(pkce).Get("code")
	if m := exchange("client_id=Iv1.client&client_secret=sekrit&code_verifier=wrong&code=" + code); m["error"] != "bad_verification_code" {
		t.Errorf("wrong PKCE verifier: %v", m)
	}
	code = authorize(pkce).Get("code")
	if m := exchange("client_id=Iv1.client&client_secret=sekrit&code_verifier=" + verifier + "&code=" + code); m["access_token"] == "" {
		t.Errorf("right PKCE verifier: %v", m)
	}
	pkce.Set("code_challenge_method", "plain")
	if got := authorize(pkce); got.Get("error") != "invalid_request" || got.Get("code") != "" {
		t.Errorf("plain PKCE: %v, want invalid_request", got)
	}

	user := func(auth string) (int, map[string]any) {
		req, _ := http.NewRequest("GET", fake.URL+"/user", nil)
		req.Header.Set("Authorization", auth)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	if st, me := user("Bearer " + tok["access_token"]); st != 200 || me["login"] != "ada" || me["id"] != float64(4242) {
		t.Errorf("GET /user: %d %v", st, me)
	}
	if st, _ := user("Bearer gho_unknown"); st != 401 {
		t.Errorf("unknown token: %d, want 401", st)
	}
}
