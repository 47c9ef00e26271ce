package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/immunity-app/immunity/internal/pgtest"
)

func TestMain(m *testing.M) {
	if os.Getenv(pausedHolderEnv) != "" {
		os.Exit(pausedHolder())
	}
	os.Exit(pgtest.Main(m))
}

// engines runs a test once on each engine: a SQLite file and a fresh PostgreSQL database.
// The test gets the database setting, to open (and reopen) the store with.
func engines(t *testing.T, test func(t *testing.T, database string)) {
	t.Run("sqlite", func(t *testing.T) { test(t, filepath.Join(t.TempDir(), "immunity.db")) })
	t.Run("postgres", func(t *testing.T) { test(t, pgtest.Database(t)) })
}

// open opens the store; it is closed when the test ends.
func open(t *testing.T, database string) *Store {
	t.Helper()
	s, err := Open(context.Background(), database)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestStateSurvivesReopenAndMigrationsRunOnce(t *testing.T) { engines(t, testStateSurvivesReopen) }

func testStateSurvivesReopen(t *testing.T, path string) {
	ctx := context.Background()
	s := open(t, path)
	r, err := s.CreateRun(ctx, Run{App: "papi", SHA: "1a2b3c4d5e", State: "building"}, []string{"sandbox1", "prod3"},
		map[string][]string{"sandbox1": {"host1"}, "prod3": {"host1", "host2"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateStage(ctx, r.Stages[1].ID, StageUpdate{State: StageDeploying}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetHostStep(ctx, r.Stages[1].ID, "host2", "switching", "0ff1ce", "switching"); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s = open(t, path) // applies no migration twice
	got, err := s.Run(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	h := got.Stages[1].Hosts[1]
	if len(got.Stages) != 2 || h.Host != "host2" || h.Step != "switching" || h.PrevSHA != "0ff1ce" {
		t.Fatalf("after reopen: %+v", got.Stages)
	}
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil || n == 0 {
		t.Fatalf("no migrations recorded: %d %v", n, err)
	}
	if _, err := s.Run(ctx, 999); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing run: %v", err)
	}
}

func TestReleasePrefixMustBeUnique(t *testing.T) {
	engines(t, func(t *testing.T, db string) {
		ctx := context.Background()
		s := open(t, db)
		s.PutRelease(ctx, Release{App: "papi", SHA: "abc111", State: "ready"})
		s.PutRelease(ctx, Release{App: "papi", SHA: "abc222", State: "ready"})
		if r, err := s.Release(ctx, "papi", "abc2"); err != nil || r.SHA != "abc222" {
			t.Fatalf("unique prefix: %+v %v", r, err)
		}
		if _, err := s.Release(ctx, "papi", "abc"); err == nil {
			t.Fatal("an ambiguous prefix was accepted")
		}
		if _, err := s.Release(ctx, "papi", "fff"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("unknown release: %v", err)
		}
		if _, err := s.Release(ctx, "papi", "ab_"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("a prefix is not a pattern: %v", err)
		}
	})
}

func TestALockHasOneHolder(t *testing.T) {
	engines(t, func(t *testing.T, db string) {
		ctx := context.Background()
		s := open(t, db)
		if err := s.PutLock(ctx, Lock{App: "papi", Region: "prod3", Holder: "ada", Reason: "incident"}); err != nil {
			t.Fatal(err)
		}
		err := s.PutLock(ctx, Lock{App: "papi", Region: "prod3", Holder: "bob"})
		if !errors.Is(err, ErrLocked) {
			t.Fatalf("second lock: %v", err)
		}
		l, _ := s.Lock(ctx, "papi", "prod3")
		if l.Holder != "ada" {
			t.Fatalf("holder = %q", l.Holder)
		}
		// An unlock of the lock as read lifts it; one read before the region was
		// locked again lifts nothing.
		if err := s.DeleteLock(ctx, l); err != nil {
			t.Fatal(err)
		}
		if err := s.PutLock(ctx, Lock{App: "papi", Region: "prod3", Holder: "bob", HolderID: "cli:bob", Reason: "release day"}); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteLock(ctx, l); !errors.Is(err, ErrStateChanged) {
			t.Fatalf("a stale unlock: %v; want ErrStateChanged", err)
		}
		if l, err := s.Lock(ctx, "papi", "prod3"); err != nil || l.Holder != "bob" {
			t.Fatalf("after a stale unlock the lock is %+v %v; want bob's", l, err)
		}
	})
}
