package store

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/immunity-app/immunity/internal/pgtest"
)

func TestDeliveriesAreRecordedOnceAndFailedOnesRetried(t *testing.T) {
	engines(t, func(t *testing.T, db string) {
		ctx := t.Context()
		s := open(t, db)
		l, err := s.OpenDeliveryLog(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		d := Delivery{ID: "d1", Event: "push", Repo: "acme/papi", DedupeKey: "push/abc"}
		for i, want := range []bool{true, false} {
			if fresh, err := l.Record(ctx, d); err != nil || fresh != want {
				t.Fatalf("record #%d: fresh=%v err=%v, want fresh=%v", i+1, fresh, err, want)
			}
		}
		// The same event under another delivery id is a duplicate.
		if fresh, err := l.Record(ctx, Delivery{ID: "d2", Event: "push", DedupeKey: "push/abc"}); err != nil || fresh {
			t.Fatalf("same dedupe key: fresh=%v err=%v", fresh, err)
		}
		if err := l.Finish(ctx, "d1", "failed", "boom"); err != nil {
			t.Fatal(err)
		}
		if fresh, err := l.Record(ctx, d); err != nil || !fresh {
			t.Fatalf("redelivery of a failed delivery: fresh=%v err=%v", fresh, err)
		}
		ds, err := s.Deliveries(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, d := range ds {
			got[d.ID] = d.State
		}
		if diff := cmp.Diff(map[string]string{"d1": "received", "d2": "duplicate"}, got); diff != "" {
			t.Fatalf("deliveries (-want +got):\n%s", diff)
		}
		if err := s.PruneDeliveries(ctx, time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if ds, _ := s.Deliveries(ctx); len(ds) != 0 {
			t.Fatalf("after prune: %v", ds)
		}
	})
}

// TestDeliveryLogUnderConcurrentDeliveries records deliveries from many goroutines at
// once, each sent twice and each event also under a second id: every event is fresh
// exactly once, and every write is in the store when Record and Finish return.
func TestDeliveryLogUnderConcurrentDeliveries(t *testing.T) {
	engines(t, func(t *testing.T, db string) {
		ctx := t.Context()
		s := open(t, db)
		l, err := s.OpenDeliveryLog(ctx)
		if err != nil {
			t.Fatal(err)
		}
		const n = 300
		var fresh atomic.Int64
		var wg sync.WaitGroup
		for i := range n {
			for _, id := range []string{fmt.Sprint("a", i), fmt.Sprint("a", i), fmt.Sprint("b", i)} {
				wg.Go(func() {
					f, err := l.Record(ctx, Delivery{ID: id, Event: "push", DedupeKey: fmt.Sprint("push/", i)})
					if err != nil {
						t.Error(err)
					}
					if f {
						fresh.Add(1)
						if err := l.Finish(ctx, id, "done", ""); err != nil {
							t.Error(err)
						}
					}
				})
			}
		}
		wg.Wait()
		if fresh.Load() != n {
			t.Errorf("%d fresh of %d events", fresh.Load(), n)
		}
		ds, _ := s.Deliveries(ctx)
		states := map[string]int{}
		for _, d := range ds {
			states[d.State]++
		}
		if diff := cmp.Diff(map[string]int{"done": n, "duplicate": n}, states); diff != "" {
			t.Errorf("states (-want +got):\n%s", diff)
		}
		l.Close()
	})
}

func TestInstallationsCheckRunsAndDeployments(t *testing.T) {
	engines(t, func(t *testing.T, db string) {
		ctx := t.Context()
		s := open(t, db)
		if err := s.RememberInstallation(ctx, "Acme/Papi", 7, "acme"); err != nil {
			t.Fatal(err)
		}
		if err := s.RememberInstallation(ctx, "acme/papi", 8, ""); err != nil {
			t.Fatal(err)
		}
		ins, _ := s.Installations(ctx)
		if diff := cmp.Diff([]Installation{{Repo: "acme/papi", ID: 8, Account: "acme"}}, ins); diff != "" {
			t.Fatalf("installations (-want +got):\n%s", diff)
		}
		if err := s.ForgetRepos(ctx, 8, []string{"ACME/papi"}); err != nil {
			t.Fatal(err)
		}
		if id, err := s.InstallationFor(ctx, "acme/papi"); err != nil || id != 0 {
			t.Fatalf("forgotten repo: %d %v", id, err)
		}

		if _, found, err := s.CheckRun(ctx, 1, "prod3"); err != nil || found {
			t.Fatalf("no check run yet: found=%v err=%v", found, err)
		}
		cr := CheckRun{RunID: 1, Region: "prod3", Repo: "acme/papi", Status: CheckRunCreating}
		if err := s.SaveCheckRun(ctx, cr); err != nil {
			t.Fatal(err)
		}
		if got, found, err := s.CheckRun(ctx, 1, "prod3"); err != nil || !found || got.Status != CheckRunCreating || got.Attempt != 1 {
			t.Fatalf("the intent to create a check run: %+v found=%v err=%v", got, found, err)
		}
		cr = CheckRun{RunID: 1, Region: "prod3", Repo: "acme/papi", ID: 99, Status: "queued", Digest: "x", Attempt: 1}
		if err := s.SaveCheckRun(ctx, cr); err != nil {
			t.Fatal(err)
		}
		cr.Status, cr.Attempt = "completed", 2
		if err := s.SaveCheckRun(ctx, cr); err != nil {
			t.Fatal(err)
		}
		if got, found, err := s.CheckRun(ctx, 1, "prod3"); err != nil || !found || got != cr {
			t.Fatalf("check run: %+v found=%v err=%v", got, found, err)
		}
		if run, region, err := s.CheckRunByID(ctx, 99); err != nil || run != 1 || region != "prod3" {
			t.Fatalf("by id: %d %s %v", run, region, err)
		}

		old := Deployment{Key: "run/1/prod3", App: "papi", Region: "prod3", SHA: "a", RunID: 1, Repo: "acme/papi", DeploymentID: 5, Production: true, State: "success"}
		cur := old
		cur.Key, cur.RunID, cur.DeploymentID, cur.SHA = "run/2/prod3", 2, 6, "b"
		for _, d := range []Deployment{old, cur} {
			if err := s.SaveDeployment(ctx, d); err != nil {
				t.Fatal(err)
			}
		}
		others, err := s.ActiveDeployments(ctx, "acme/papi", "prod3", cur.Key)
		if err != nil || len(others) != 1 || others[0] != old {
			t.Fatalf("active deployments: %+v %v", others, err)
		}
	})
}

// A delivery log whose PostgreSQL session was ended (the server restarted, or ended a
// session of a replica paused in the middle of a batch) takes a new connection: the batch
// that found it gone fails (its deliveries are not acknowledged, so GitHub redelivers
// them), and the next ones are recorded.
func TestTheDeliveryLogGoesOnAfterItsSessionEnds(t *testing.T) {
	ctx := t.Context()
	s := open(t, pgtest.Database(t))
	l, err := s.OpenDeliveryLog(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := l.Record(ctx, Delivery{ID: "d1", Event: "push"}); err != nil {
		t.Fatal(err)
	}
	var ended int
	if err := s.db.QueryRowContext(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`).Scan(&ended); err != nil || ended == 0 {
		t.Fatalf("ended %d sessions: %v", ended, err)
	}
	var errs []error
	for i := range 3 {
		id := fmt.Sprint("d", i+2)
		fresh, err := l.Record(ctx, Delivery{ID: id, Event: "push"})
		if err == nil {
			if !fresh {
				t.Fatalf("%s was recorded as seen before", id)
			}
			if i > 1 {
				t.Fatalf("recorded only after %d failures: %v", i, errs)
			}
			t.Logf("recorded after %d failed batches: %v", i, errs)
			all, err := s.Deliveries(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.ContainsFunc(all, func(d Delivery) bool { return d.ID == id && d.State == "received" }) {
				t.Fatalf("%s is not stored as received: %+v", id, all)
			}
			return
		}
		errs = append(errs, err)
	}
	t.Fatalf("the log records nothing once its session ended: %v", errs)
}
