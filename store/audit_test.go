package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// auditRows is the audit log, oldest first, one line an entry.
func auditRows(t *testing.T, s *Store) []string {
	t.Helper()
	all, err := s.Audits(context.Background(), "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for i := len(all) - 1; i >= 0; i-- {
		a := all[i]
		out = append(out, fmt.Sprintf("%s %s %s/%s %q %s", a.ActorID, a.Action, a.App, a.Region, a.Args, a.Outcome))
	}
	return out
}

// A change made with an audit note commits with its entry or not at all: the entry's
// insert failing leaves neither; a write that changes nothing (a stale state, a lock
// taken already) leaves no entry either; one that goes through leaves exactly one, even
// when more writes follow with the same note.
func TestAuditNoteCommitsWithItsChange(t *testing.T) {
	engines(t, func(t *testing.T, db string) {
		ctx := context.Background()
		s := open(t, db)
		entry := func(action, region, args string) *AuditNote {
			return NewAuditNote(Audit{Actor: "ada", ActorID: "github:1", Via: "cli", Action: action, App: "papi", Region: region, Args: args, Outcome: "ok"})
		}
		// each runs a change with a note, checks how it ended and what the log holds.
		each := func(what string, n *AuditNote, change func(ctx context.Context) error, want error, written bool, log ...string) {
			t.Helper()
			err := change(n.With(ctx))
			switch {
			case want == nil && err != nil:
				t.Fatalf("%s: %v", what, err)
			case want != nil && !errors.Is(err, want) && (err == nil || !strings.Contains(err.Error(), want.Error())):
				t.Fatalf("%s: %v; want %v", what, err, want)
			}
			if n.Written() != written {
				t.Fatalf("%s: the note says written=%v; want %v", what, n.Written(), written)
			}
			if got := auditRows(t, s); strings.Join(got, "\n") != strings.Join(log, "\n") {
				t.Fatalf("%s: the audit log is\n%s\nwant\n%s", what, strings.Join(got, "\n"), strings.Join(log, "\n"))
			}
		}
		injected := errors.New("injected failure")
		lockOf := func() string {
			l, err := s.Lock(ctx, "papi", "prod3")
			return fmt.Sprintf("%q %q %v", l.HolderID, l.Reason, err)
		}
		put := func(ctx context.Context) error {
			return s.PutLock(ctx, Lock{App: "papi", Region: "prod3", Holder: "ada", HolderID: "github:1", Reason: "release train"})
		}
		lock1 := "github:1 lock papi/prod3 \"\" ok"

		// A lock.
		lift := failWrites(t, s, "INSERT", "audit", "NEW.action = 'lock'")
		each("a lock whose entry is refused", entry("lock", "prod3", ""), put, injected, false)
		if got := lockOf(); !strings.Contains(got, ErrNotFound.Error()) {
			t.Fatalf("a lock whose entry was refused is held: %s", got)
		}
		lift()
		n := entry("lock", "prod3", "")
		each("a lock", n, put, nil, true, lock1)
		if err := s.AddEvent(n.With(ctx), Event{App: "papi", Region: "prod3", Kind: "locked", Message: "locked"}); err != nil {
			t.Fatal(err)
		}
		each("a second write with the note of a lock", n, func(ctx context.Context) error {
			return s.AddFreezes(ctx, []Freeze{{App: "papi", Region: "prod4", Until: time.Now().Add(time.Hour), Reason: "later"}})
		}, nil, true, lock1)
		each("a lock taken already", entry("lock", "prod3", ""), put, ErrLocked, false, lock1)
		if err := s.AddAudit(n.With(ctx), Audit{ActorID: "github:2", Action: "lock", App: "papi", Region: "prod3", Outcome: "refused"}); err != nil {
			t.Fatal(err)
		}
		refused := "github:2 lock papi/prod3 \"\" refused"

		// An unlock: of a lock taken again since it was read, whose entry is refused, done.
		read, err := s.Lock(ctx, "papi", "prod3")
		if err != nil {
			t.Fatal(err)
		}
		stale := read
		stale.Reason = "another"
		each("an unlock of a lock changed since it was read", entry("unlock", "prod3", ""), func(ctx context.Context) error { return s.DeleteLock(ctx, stale) },
			ErrStateChanged, false, lock1, refused)
		lift = failWrites(t, s, "INSERT", "audit", "NEW.action = 'unlock'")
		each("an unlock whose entry is refused", entry("unlock", "prod3", ""), func(ctx context.Context) error { return s.DeleteLock(ctx, read) },
			injected, false, lock1, refused)
		if got := lockOf(); !strings.Contains(got, "release train") {
			t.Fatalf("an unlock whose entry was refused lifted the lock: %s", got)
		}
		lift()
		unlock := "github:1 unlock papi/prod3 \"--force\" ok"
		each("an unlock", entry("unlock", "prod3", "--force"), func(ctx context.Context) error { return s.DeleteLock(ctx, read) }, nil, true, lock1, refused, unlock)

		// A promotion: of a stage no longer in the state read, whose entry is refused, done.
		r := threeStages(t, s)
		before := runRows(t, s, r.ID)
		promote := func(from StageState) func(ctx context.Context) error {
			return func(ctx context.Context) error {
				return s.MoveStageAndRun(ctx, r.Stages[1].ID, StageUpdate{State: StageApproved, ApprovedBy: "ada", OnlyIf: []StageState{from}}, r.ID, RunRunning, "promoted")
			}
		}
		each("a promotion of a stage changed since", entry("promote", "prod3", ""), promote(StagePending), ErrStateChanged, false, lock1, refused, unlock)
		lift = failWrites(t, s, "INSERT", "audit", "NEW.action = 'promote'")
		each("a promotion whose entry is refused", entry("promote", "prod3", ""), promote(StageAwaitingApproval), injected, false, lock1, refused, unlock)
		if got := runRows(t, s, r.ID); got != before {
			t.Fatalf("a promotion whose entry was refused changed the run:\n%s\nwas\n%s", got, before)
		}
		lift()
		promoted := "github:1 promote papi/prod3 \"\" ok"
		each("a promotion", entry("promote", "prod3", ""), promote(StageAwaitingApproval), nil, true, lock1, refused, unlock, promoted)

		// A token made and revoked.
		tokens := func() string {
			ts, err := s.Tokens(ctx)
			out := fmt.Sprint(err)
			for _, tk := range ts {
				out += fmt.Sprintf(" %s revoked=%v", tk.Name, !tk.Revoked.IsZero())
			}
			return out
		}
		create := func(ctx context.Context) error {
			return s.CreateToken(ctx, Token{Hash: "h1", Name: "deployer", Role: "member", CreatedBy: "github:1"})
		}
		revoke := func(ctx context.Context) error { return s.RevokeToken(ctx, "deployer") }
		tokenNote := func(action string) *AuditNote {
			return NewAuditNote(Audit{ActorID: "github:1", Action: action, Args: "deployer", Outcome: "ok"})
		}
		lift = failWrites(t, s, "INSERT", "audit", "NEW.action LIKE 'token%'")
		each("a token whose entry is refused", tokenNote("token create"), create, injected, false, lock1, refused, unlock, promoted)
		if got := tokens(); got != "<nil>" {
			t.Fatalf("a token whose entry was refused was made: %s", got)
		}
		lift()
		created := "github:1 token create / \"deployer\" ok"
		each("a token", tokenNote("token create"), create, nil, true, lock1, refused, unlock, promoted, created)
		lift = failWrites(t, s, "INSERT", "audit", "NEW.action LIKE 'token%'")
		each("a revocation whose entry is refused", tokenNote("token revoke"), revoke, injected, false, lock1, refused, unlock, promoted, created)
		if got := tokens(); got != "<nil> deployer revoked=false" {
			t.Fatalf("a revocation whose entry was refused revoked: %s", got)
		}
		lift()
		revoked := "github:1 token revoke / \"deployer\" ok"
		each("a revocation", tokenNote("token revoke"), revoke, nil, true, lock1, refused, unlock, promoted, created, revoked)
		each("a revocation of a token revoked already", tokenNote("token revoke"), revoke, ErrNotFound, false, lock1, refused, unlock, promoted, created, revoked)
	})
}
