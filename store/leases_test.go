package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// holdLease claims a lease for a test's fenced writes.
func holdLease(t *testing.T, s *Store, name string) Lease {
	t.Helper()
	l, ok, err := s.ClaimLease(t.Context(), name, s.Replica(), time.Minute)
	if err != nil || !ok {
		t.Fatalf("claim %s: %v %v", name, ok, err)
	}
	return l
}

// Two replicas on one database: one holds a lease at a time; the one that stalled past
// its expiry and was taken over is fenced off; a released lease is free at once.
func TestALeaseHasOneHolderAndFencesOffTheLastOne(t *testing.T) {
	engines(t, func(t *testing.T, db string) {
		ctx := t.Context()
		a, b := open(t, db), open(t, db)
		if a.Replica() == b.Replica() {
			t.Fatalf("two stores, one replica name %q", a.Replica())
		}
		la, ok, err := a.ClaimLease(ctx, "outbox/slack", a.Replica(), 15*time.Second)
		if err != nil || !ok || la.Token != 1 {
			t.Fatalf("first claim: %+v %v %v", la, ok, err)
		}
		if _, ok, err := b.ClaimLease(ctx, "outbox/slack", b.Replica(), 15*time.Second); err != nil || ok {
			t.Fatalf("a held lease was claimed again: %v %v", ok, err)
		}
		if got, err := b.ReadLease(ctx, "outbox/slack"); err != nil || got.Holder != a.Replica() || got.Token != 1 || !got.Expires.Equal(la.Expires) {
			t.Fatalf("b reads the lease as %+v (%v); want a's %+v", got, err, la)
		}
		if got, err := b.ReadLease(ctx, "outbox/never"); err != nil || got != (Lease{Name: "outbox/never"}) {
			t.Fatalf("a lease never claimed reads as %+v (%v)", got, err)
		}
		if again, ok, err := a.ClaimLease(ctx, "outbox/slack", a.Replica(), 15*time.Second); err != nil || !ok || again.Token != la.Token {
			t.Fatalf("the holder's own claim renews: %+v %v %v", again, ok, err)
		}
		if la, err = a.RenewLease(ctx, la, 15*time.Second); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Enqueue(ctx, OutboxItem{Stream: "slack/run/1", Kind: "post", Payload: "p"}); err != nil {
			t.Fatal(err)
		}
		heads, _ := a.OutboxHeads(ctx, "slack/", 10)

		// b's clock is a minute on: a stalled past its lease, and b takes over.
		b.leaseNow = func() time.Time { return time.Now().Add(time.Minute) }
		lb, ok, err := b.ClaimLease(ctx, "outbox/slack", b.Replica(), 15*time.Second)
		if err != nil || !ok || lb.Token != 2 {
			t.Fatalf("takeover of an expired lease: %+v %v %v", lb, ok, err)
		}
		if _, err := a.RenewLease(ctx, la, 15*time.Second); !errors.Is(err, ErrLeaseLost) {
			t.Fatalf("renewal of a lease taken over: %v; want ErrLeaseLost", err)
		}
		for name, write := range map[string]func() error{
			"done": func() error { return a.OutboxDone(ctx, la, heads[0].ID, OutboxDropped, "x") },
			"delivered": func() error {
				_, err := a.OutboxDelivered(ctx, la, heads[0])
				return err
			},
			"retry": func() error { return a.OutboxRetry(ctx, la, heads[0].ID, time.Now(), "x") },
			"defer": func() error { return a.OutboxDefer(ctx, la, heads[0].ID, time.Now()) },
		} {
			if err := write(); !errors.Is(err, ErrLeaseLost) {
				t.Fatalf("fenced %s with the old token: %v; want ErrLeaseLost", name, err)
			}
		}
		if it, _ := a.OutboxItemByID(ctx, heads[0].ID); it.State != OutboxPending || it.Attempts != 0 || !it.NotBefore.IsZero() {
			t.Fatalf("the old holder's writes changed the row: %+v", it)
		}
		if err := b.OutboxDone(ctx, lb, heads[0].ID, OutboxSent, ""); err != nil {
			t.Fatal(err)
		}
		if err := b.ReleaseLease(ctx, lb); err != nil {
			t.Fatal(err)
		}
		if la, ok, err = a.ClaimLease(ctx, "outbox/slack", a.Replica(), 15*time.Second); err != nil || !ok || la.Token != 3 {
			t.Fatalf("claim of a released lease: %+v %v %v", la, ok, err)
		}
	})
}

// Replicas claiming one free lease at the same moment: exactly one gets it.
func TestConcurrentClaimsHaveOneWinner(t *testing.T) {
	engines(t, func(t *testing.T, db string) {
		ctx := t.Context()
		stores := []*Store{open(t, db), open(t, db), open(t, db)}
		for round := range 5 {
			name := fmt.Sprintf("run/%d", round)
			var wg sync.WaitGroup
			var won atomic.Int32
			for i := range 9 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					s := stores[i%3]
					_, ok, err := s.ClaimLease(ctx, name, fmt.Sprintf("%s#%d", s.Replica(), i), time.Minute)
					if err != nil {
						t.Error(err)
					}
					if ok {
						won.Add(1)
					}
				}()
			}
			wg.Wait()
			if n := won.Load(); n != 1 {
				t.Fatalf("%s: %d claims won; want 1", name, n)
			}
		}
	})
}

// A holding claims, renews past the first ttl, and releases when its context ends.
func TestAHoldingRenewsAndReleases(t *testing.T) {
	engines(t, func(t *testing.T, db string) {
		a, b := open(t, db), open(t, db)
		ctx, cancel := context.WithCancel(t.Context())
		// The ttl is long beside a renewal (a third of it) so a starved machine still
		// renews in time; the check waits until the first claim would have expired.
		const ttl = 3 * time.Second
		h := a.Hold(ctx, "outbox/github", ttl)
		first, held := h.Lease()
		if !held {
			t.Fatal("a free lease was not held")
		}
		if hb := b.Hold(t.Context(), "outbox/github", ttl); func() bool { _, ok := hb.Lease(); return ok }() {
			t.Fatal("two holdings hold one lease")
		}
		time.Sleep(time.Until(first.Expires) + 200*time.Millisecond)
		l, held := h.Lease()
		if !held || l.Token != first.Token || !l.Expires.After(first.Expires) {
			t.Fatalf("after a ttl and more: %+v held=%v; want renewed %+v", l, held, first)
		}
		cancel()
		<-h.Done()
		if _, ok, err := b.ClaimLease(t.Context(), "outbox/github", b.Replica(), time.Minute); err != nil || !ok {
			t.Fatalf("claim after release: %v %v", ok, err)
		}
	})
}

// Every write done with a context under a lease (WithLease) is fenced: once another
// replica took the lease over, the old holder's writes, single statements and
// transactions alike, change nothing and answer ErrLeaseLost.
func TestWritesUnderALeaseAreFenced(t *testing.T) {
	engines(t, func(t *testing.T, db string) {
		ctx := t.Context()
		a, b := open(t, db), open(t, db)
		la := holdLease(t, a, "engine/papi")
		actx := WithLease(ctx, la)
		r, err := a.CreateRun(actx, Run{App: "papi", SHA: "1a2b3c", State: RunBuilding}, []string{"sandbox1"}, map[string][]string{"sandbox1": {"h1"}})
		if err != nil {
			t.Fatal(err)
		}
		if err := a.SetRunState(actx, r.ID, RunRunning, "built"); err != nil {
			t.Fatal(err)
		}

		// b's clock is two minutes on: a's lease has expired there, and b takes it over.
		b.leaseNow = func() time.Time { return time.Now().Add(2 * time.Minute) }
		lb, ok, err := b.ClaimLease(ctx, "engine/papi", b.Replica(), time.Minute)
		if err != nil || !ok || lb.Token != la.Token+1 {
			t.Fatalf("takeover: %+v %v %v", lb, ok, err)
		}
		a.leaseNow = b.leaseNow // a resumes, its clock right again
		if err := a.SetRunState(actx, r.ID, RunFailed, "from the stalled replica"); !errors.Is(err, ErrLeaseLost) {
			t.Fatalf("a statement under the lost lease: %v; want ErrLeaseLost", err)
		}
		if _, err := a.CreateRun(actx, Run{App: "papi", SHA: "4d5e6f", State: RunBuilding}, []string{"sandbox1"}, nil); !errors.Is(err, ErrLeaseLost) {
			t.Fatalf("a transaction under the lost lease: %v; want ErrLeaseLost", err)
		}
		if runs, err := a.Runs(actx, "papi", false, 0); err != nil || len(runs) != 1 || runs[0].State != RunRunning {
			t.Fatalf("runs after the fenced writes: %+v %v; want the one run, still running", runs, err)
		}
		if err := b.SetRunState(WithLease(ctx, lb), r.ID, RunSucceeded, "done"); err != nil {
			t.Fatalf("the new holder's write: %v", err)
		}
		if err := a.SetRunState(ctx, r.ID, RunSucceeded, "done"); err != nil {
			t.Fatalf("a write under no lease is not fenced: %v", err)
		}
	})
}
