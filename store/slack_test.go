package store

import (
	"errors"
	"sync"
	"testing"
	"time"
)

// Two replicas race to post a run's root: the database lets one claim it, the other waits
// for its thread and then threads under it; a claim whose replica died is taken over.
func TestSlackRootClaimedOnceAcrossReplicas(t *testing.T) {
	engines(t, func(t *testing.T, db string) {
		ctx := t.Context()
		a, b := open(t, db), open(t, db)
		a.SetReplica("a")
		b.SetReplica("b")

		type answer struct {
			s     *Store
			found bool
			err   error
		}
		answers := make([]answer, 2)
		var wg sync.WaitGroup
		for i, s := range []*Store{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, found, err := s.ClaimSlackRoot(ctx, 7)
				answers[i] = answer{s, found, err}
			}()
		}
		wg.Wait()
		var winner, loser *Store
		for _, an := range answers {
			switch {
			case an.err == nil && !an.found:
				if winner != nil {
					t.Fatal("both replicas claimed the root")
				}
				winner = an.s
			case errors.Is(an.err, ErrRootClaimed):
				loser = an.s
			default:
				t.Fatalf("claim: found %v, %v", an.found, an.err)
			}
		}
		if winner == nil || loser == nil {
			t.Fatalf("one claim and one wait, got %+v", answers)
		}
		if _, found, err := loser.SlackThread(ctx, 7); err != nil || found {
			t.Fatalf("a claim is not a thread: %v %v", found, err)
		}
		if err := winner.SaveSlackThread(ctx, SlackThread{RunID: 7, Channel: "C1"}); err == nil {
			t.Fatal("a thread without ts was saved")
		}
		if err := winner.SaveSlackThread(ctx, SlackThread{RunID: 7, Channel: "C1", TS: "1.1"}); err != nil {
			t.Fatal(err)
		}
		th, found, err := loser.ClaimSlackRoot(ctx, 7)
		if err != nil || !found || th != (SlackThread{RunID: 7, Channel: "C1", TS: "1.1"}) {
			t.Fatalf("after the post the other replica threads under it: %+v %v %v", th, found, err)
		}
		if err := loser.SaveSlackThread(ctx, SlackThread{RunID: 7, Channel: "C1", TS: "2.2"}); !errors.Is(err, ErrRootClaimed) {
			t.Fatalf("a second root saved over the first: %v", err)
		}
		if th, found, err := a.SlackThread(ctx, 7); err != nil || !found || th.TS != "1.1" {
			t.Fatalf("the first thread is kept: %+v %v %v", th, found, err)
		}

		// A replica that claimed run 8's root and died before posting it: the claim is
		// refused to others for a lease's time, then taken over; the dead one saves nothing.
		if th, found, err := a.ClaimSlackRoot(ctx, 8); err != nil || found || th.Tried {
			t.Fatalf("first claim: %+v %v %v", th, found, err)
		}
		if th, _, err := a.ClaimSlackRoot(ctx, 8); err != nil || !th.Tried {
			t.Fatalf("a replica's own claim is its again (it restarted), tried before: %+v %v", th, err)
		}
		if _, _, err := b.ClaimSlackRoot(ctx, 8); !errors.Is(err, ErrRootClaimed) {
			t.Fatalf("a fresh claim was taken over: %v", err)
		}
		b.leaseNow = func() time.Time { return time.Now().Add(b.LeaseTTL() + time.Second) }
		if th, found, err := b.ClaimSlackRoot(ctx, 8); err != nil || found || !th.Tried {
			t.Fatalf("a stale claim is taken over, tried before: %+v %v %v", th, found, err)
		}
		if err := a.SaveSlackThread(ctx, SlackThread{RunID: 8, Channel: "C1", TS: "3.3"}); !errors.Is(err, ErrRootClaimed) {
			t.Fatalf("the replica whose claim was taken over saved its root: %v", err)
		}
	})
}

// A Slack request's signature is used once across replicas and restarts: the second
// replica, and a store opened again, find it recorded; one whose time has passed is
// forgotten and may be used again.
func TestSlackSignatureUsedOnceAcrossReplicas(t *testing.T) {
	engines(t, func(t *testing.T, db string) {
		ctx := t.Context()
		a, b := open(t, db), open(t, db)
		later := time.Now().Add(10 * time.Minute)
		for _, c := range []struct {
			s    *Store
			sig  string
			want bool
		}{{a, "v0=1", true}, {b, "v0=1", false}, {a, "v0=1", false}, {b, "v0=2", true}, {a, "v0=2", false}} {
			got, err := c.s.FirstSlackSignature(ctx, c.sig, later)
			if err != nil || got != c.want {
				t.Fatalf("FirstSlackSignature(%s) = %v, %v; want %v", c.sig, got, err, c.want)
			}
		}
		if got, err := open(t, db).FirstSlackSignature(ctx, "v0=1", later); err != nil || got {
			t.Fatalf("after a restart: %v, %v; want the signature still recorded", got, err)
		}
		past := time.Now().Add(-time.Second)
		if got, err := a.FirstSlackSignature(ctx, "v0=3", past); err != nil || !got {
			t.Fatalf("v0=3: %v, %v", got, err)
		}
		if got, err := b.FirstSlackSignature(ctx, "v0=3", later); err != nil || !got {
			t.Fatalf("a signature whose time had passed: %v, %v; want it forgotten", got, err)
		}
	})
}
