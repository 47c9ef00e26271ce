package app

import (
	"context"
	"database/sql"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/immunity-app/immunity/pipeline/config"
	"github.com/immunity-app/immunity/store"
)

// A token made or revoked and its audit entry are one write: with the entry's insert
// failing, neither the token's change nor an entry is left; then the same request makes
// its change and exactly one entry.
func TestTokenChangesAndTheirAuditAreOneWrite(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := filepath.Join(t.TempDir(), "immunity.db")
	in, base := dashboardServer(t, func(cfg *config.Config) { cfg.Server.Database = db })
	root, err := CreateToken(ctx, in.Store, "root", RoleAdmin, "test")
	if err != nil {
		t.Fatal(err)
	}
	call := func(method, path, body string) int {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+root)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	entries := func(action string) []store.Audit {
		t.Helper()
		all, err := in.Store.Audits(ctx, "", 1000)
		if err != nil {
			t.Fatal(err)
		}
		var out []store.Audit
		for _, a := range all {
			if a.Action == action {
				out = append(out, a)
			}
		}
		return out
	}
	ci := func() string {
		ts, err := in.Store.Tokens(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, tk := range ts {
			if tk.Name == "ci" && tk.Revoked.IsZero() {
				return "ci in force"
			}
		}
		return "no ci in force"
	}
	for _, c := range []struct {
		action, method, path, body string
		before, after              string
	}{
		{"token create", "POST", "/api/tokens", `{"name": "ci", "role": "member"}`, "no ci in force", "ci in force"},
		{"token revoke", "DELETE", "/api/tokens/ci", "", "ci in force", "no ci in force"},
	} {
		lift := refuseAudit(t, db, "token%")
		if code := call(c.method, c.path, c.body); code == http.StatusOK {
			t.Fatalf("%s with its audit entry refused: %d", c.action, code)
		}
		if got := ci(); got != c.before {
			t.Fatalf("%s whose audit entry was refused changed the tokens: %s", c.action, got)
		}
		if got := entries(c.action); len(got) != 0 {
			t.Fatalf("%s whose audit entry was refused left entries: %+v", c.action, got)
		}
		lift()
		if code := call(c.method, c.path, c.body); code != http.StatusOK {
			t.Fatalf("%s: %d", c.action, code)
		}
		if got := ci(); got != c.after {
			t.Fatalf("after %s: %s", c.action, got)
		}
		if got := entries(c.action); len(got) != 1 || got[0].ActorID != "token:root" || got[0].Outcome != "ok" || !strings.HasPrefix(got[0].Args, "ci") {
			t.Fatalf("%s: entries %+v; want one", c.action, got)
		}
	}
}

// refuseAudit makes the audit log of the SQLite database db refuse the entries whose
// action is LIKE pattern, as a disk failing: a trigger, from a connection of the test's.
// The returned func lifts it.
func refuseAudit(t *testing.T, db, pattern string) func() {
	t.Helper()
	ctx := context.Background()
	conn, err := sql.Open("sqlite", "file:"+db+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, `CREATE TRIGGER fail_audit BEFORE INSERT ON audit WHEN NEW.action LIKE '`+pattern+`' BEGIN SELECT RAISE(ABORT, 'injected failure'); END`); err != nil {
		t.Fatal(err)
	}
	return func() {
		t.Helper()
		defer conn.Close()
		if _, err := conn.ExecContext(ctx, `DROP TRIGGER fail_audit`); err != nil {
			t.Fatal(err)
		}
	}
}

// A sign-in's session and a sign-out's end of it are one write with their audit entries:
// with the entry refused, the browser is not signed in (or stays signed in) and no entry
// is left; then the same sign-in (sign-out) goes through with exactly one entry.
func TestSignInAndOutAndTheirAuditAreOneWrite(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := filepath.Join(t.TempDir(), "immunity.db")
	in, base := dashboardServer(t, func(cfg *config.Config) { cfg.Server.Database = db })
	tok, err := CreateToken(ctx, in.Store, "root", RoleAdmin, "test")
	if err != nil {
		t.Fatal(err)
	}
	entries := func(action string) (n int) {
		t.Helper()
		all, err := in.Store.Audits(ctx, "", 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range all {
			if a.Action == action && a.ActorID == "token:root" && a.Outcome == "ok" {
				n++
			}
		}
		return n
	}
	b := newBrowser(t)
	csrf := func() string { // the session's CSRF token, "" when not signed in
		_, page := b.do("GET", base+"/", nil)
		if m := csrfField.FindStringSubmatch(page); m != nil {
			return m[1]
		}
		return ""
	}
	signIn := func() *http.Response {
		_, page := b.do("GET", base+"/signin", nil)
		resp, _ := b.do("POST", base+"/signin/token", url.Values{"token": {tok}, "csrf": {csrfField.FindStringSubmatch(page)[1]}})
		return resp
	}

	lift := refuseAudit(t, db, "sign%")
	if resp := signIn(); resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("a sign-in whose audit entry was refused: %d", resp.StatusCode)
	}
	if csrf() != "" || entries("sign in") != 0 {
		t.Fatalf("a sign-in whose audit entry was refused signed in (%v) or left an entry (%d)", csrf() != "", entries("sign in"))
	}
	lift()
	if resp := signIn(); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign in: %d", resp.StatusCode)
	}
	token := csrf()
	if token == "" || entries("sign in") != 1 {
		t.Fatalf("sign in: signed in %v, %d entries; want one", token != "", entries("sign in"))
	}

	lift = refuseAudit(t, db, "sign%")
	if resp, _ := b.do("POST", base+"/signout", url.Values{"csrf": {token}}); resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("a sign-out whose audit entry was refused: %d", resp.StatusCode)
	}
	if csrf() == "" || entries("sign out") != 0 {
		t.Fatalf("a sign-out whose audit entry was refused signed out (%v) or left an entry (%d)", csrf() == "", entries("sign out"))
	}
	lift()
	if resp, _ := b.do("POST", base+"/signout", url.Values{"csrf": {token}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign out: %d", resp.StatusCode)
	}
	if csrf() != "" || entries("sign out") != 1 {
		t.Fatalf("sign out: still signed in %v, %d entries; want one", csrf() != "", entries("sign out"))
	}
}
