package store

import (
	"errors"
	"testing"
	"time"
)

func TestTokensSessionsAndTheAuditPage(t *testing.T) {
	engines(t, func(t *testing.T, db string) {
		ctx := t.Context()
		s := open(t, db)
		if err := s.CreateToken(ctx, Token{Hash: "h1", Name: "ci", Role: "member", CreatedBy: "ada"}); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateToken(ctx, Token{Hash: "h2", Name: "ci", Role: "admin"}); !errors.Is(err, ErrExists) {
			t.Fatalf("a second token of the same name: %v; want ErrExists", err)
		}
		if tok, err := s.TokenByHash(ctx, "h1"); err != nil || tok.Name != "ci" || tok.Role != "member" {
			t.Fatalf("token by hash: %+v %v", tok, err)
		}
		if err := s.PutSession(ctx, Session{Hash: "old", Actor: `{"id":"token:ci"}`, CSRF: "c", Expires: time.Now().Add(-time.Minute)}); err != nil {
			t.Fatal(err)
		}
		if err := s.PutSession(ctx, Session{Hash: "s1", Actor: `{"id":"token:ci"}`, Token: "ci", CSRF: "c", Expires: time.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if se, err := s.SessionByHash(ctx, "s1"); err != nil || se.CSRF != "c" {
			t.Fatalf("session: %+v %v", se, err)
		}
		var expired int
		if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM sessions WHERE hash = 'old'`).Scan(&expired); err != nil || expired != 0 {
			t.Fatalf("an expired session left after a sign-in: %d rows, %v", expired, err)
		}
		if err := s.RevokeToken(ctx, "ci"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.TokenByHash(ctx, "h1"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("revoked token: %v", err)
		}
		if _, err := s.SessionByHash(ctx, "s1"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("the session of a revoked token: %v", err)
		}
		if err := s.RevokeToken(ctx, "ci"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("revoking twice: %v", err)
		}
		// A sign-in that read the token just before it was revoked writes its session
		// after: that session is nobody, and stays so when a token of that name is made again.
		if err := s.PutSession(ctx, Session{Hash: "late", Actor: `{"id":"token:ci","admin":true}`, Token: "ci", CSRF: "c", Expires: time.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.SessionByHash(ctx, "late"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("a session written after its token was revoked: %v; want nobody", err)
		}
		if err := s.CreateToken(ctx, Token{Hash: "h3", Name: "ci", Role: "member"}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.SessionByHash(ctx, "late"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("a session of a revoked token after a new token of its name: %v; want nobody", err)
		}
		if err := s.RevokeToken(ctx, "ci"); err != nil {
			t.Fatal(err)
		}
		if toks, err := s.Tokens(ctx); err != nil || len(toks) != 2 || toks[0].Revoked.IsZero() || toks[1].Revoked.IsZero() {
			t.Fatalf("tokens: %+v %v", toks, err)
		}

		for _, a := range []Audit{
			{Actor: "ada", ActorID: "slack:T/U1", Action: "promote", App: "papi", Region: "prod3"},
			{Actor: "bob", ActorID: "github:2", Action: "lock", App: "papi", Region: "prod4"},
			{Actor: "ada", ActorID: "slack:T/U1", Action: "rollback", App: "other", Region: "prod3"},
		} {
			if err := s.AddAudit(ctx, a); err != nil {
				t.Fatal(err)
			}
		}
		page := func(f AuditFilter) []string {
			t.Helper()
			au, err := s.AuditPage(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, a := range au {
				out = append(out, a.Action)
			}
			return out
		}
		if got := page(AuditFilter{Person: "slack:T/U1"}); len(got) != 2 || got[0] != "rollback" {
			t.Fatalf("by person: %v", got)
		}
		if got := page(AuditFilter{App: "papi", Region: "prod4"}); len(got) != 1 || got[0] != "lock" {
			t.Fatalf("by app and region: %v", got)
		}
		all, _ := s.AuditPage(ctx, AuditFilter{Limit: 1})
		if got := page(AuditFilter{Before: all[0].ID}); len(got) != 2 || got[0] != "lock" {
			t.Fatalf("the page before %d: %v", all[0].ID, got)
		}
	})
}

func TestOutboxItemsDeferAndPrune(t *testing.T) {
	engines(t, func(t *testing.T, db string) {
		ctx := t.Context()
		s := open(t, db)
		l := holdLease(t, s, "outbox/test")
		if _, err := s.Enqueue(ctx, OutboxItem{Stream: "github/run/1", Kind: "run", Payload: "p"}); err != nil {
			t.Fatal(err)
		}
		heads, err := s.OutboxHeads(ctx, "github/", 10)
		if err != nil || len(heads) != 1 {
			t.Fatalf("heads: %+v %v", heads, err)
		}
		later := time.Now().Add(time.Hour)
		if err := s.OutboxDefer(ctx, l, heads[0].ID, later); err != nil {
			t.Fatal(err)
		}
		it, err := s.OutboxItemByID(ctx, heads[0].ID)
		if err != nil || it.Attempts != 0 || it.NotBefore.UnixNano() != later.UnixNano() {
			t.Fatalf("deferred item: %+v %v", it, err)
		}
		if _, err := s.OutboxItemByID(ctx, heads[0].ID+100); !errors.Is(err, ErrNotFound) {
			t.Fatalf("an unknown item: %v", err)
		}
		if err := s.OutboxDone(ctx, l, it.ID, OutboxSent, ""); err != nil {
			t.Fatal(err)
		}
		s.now = func() time.Time { return time.Now().Add(48 * time.Hour) }
		if err := s.PruneOutbox(ctx, 24*time.Hour); err != nil {
			t.Fatal(err)
		}
		if _, err := s.OutboxItemByID(ctx, it.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("a pruned item: %v", err)
		}
	})
}
