package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// Live messages reach every subscription on the database in the order published: on
// PostgreSQL another server's too; on SQLite (one process) the store's own.
func TestLiveMessagesReachEverySubscriber(t *testing.T) {
	engines(t, func(t *testing.T, db string) {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		a := open(t, db)
		b := a
		if a.Engine() == "postgres" {
			b = open(t, db) // another server on the same database
		}
		subA, err := a.Subscribe(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer subA.Close()
		subB, err := b.Subscribe(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Publish(ctx, []byte(strings.Repeat("x", MaxLiveMessage+1))); err == nil {
			t.Fatal("a message too long for NOTIFY was published")
		}
		for i := range 3 {
			if err := a.Publish(ctx, fmt.Appendf(nil, `{"n":%d}`, i)); err != nil {
				t.Fatal(err)
			}
		}
		for name, sub := range map[string]*Subscription{"publisher": subA, "other": subB} {
			for i := range 3 {
				msg, err := sub.Next(ctx)
				if want := fmt.Sprintf(`{"n":%d}`, i); err != nil || string(msg) != want {
					t.Fatalf("%s's subscription got %q %v, want %s (the too-long one never sent)", name, msg, err, want)
				}
			}
		}
		subB.Close()
		if _, err := subB.Next(ctx); !errors.Is(err, ErrClosed) {
			t.Fatalf("a closed subscription: %v", err)
		}
		// Closing the store ends its subscriptions, also one waiting.
		done := make(chan error, 1)
		go func() { _, err := subA.Next(ctx); done <- err }()
		time.Sleep(50 * time.Millisecond)
		a.Close()
		if err := <-done; !errors.Is(err, ErrClosed) {
			t.Fatalf("a subscription of a closed store: %v", err)
		}
		if _, err := a.Subscribe(ctx); !errors.Is(err, ErrClosed) {
			t.Fatalf("subscribed to a closed store: %v", err)
		}
	})
}

// A subscription that may have missed messages says so (ErrLiveGap) rather than going
// on as if nothing happened: on SQLite when it falls behind, on PostgreSQL when its
// connection is lost.
func TestLiveSubscriptionEndsOnAGap(t *testing.T) {
	engines(t, func(t *testing.T, db string) {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		s := open(t, db)
		sub, err := s.Subscribe(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		got := 0
		if s.Engine() == "postgres" {
			if _, err := s.db.pool.ExecContext(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = 'LISTEN `+liveChannel+`'`); err != nil {
				t.Fatal(err)
			}
		} else {
			for range liveBacklog + 1 {
				if err := s.Publish(ctx, []byte("m")); err != nil {
					t.Fatal(err)
				}
			}
		}
		for {
			_, err := sub.Next(ctx)
			if err != nil {
				if !errors.Is(err, ErrLiveGap) {
					t.Fatalf("after %d messages: %v, want ErrLiveGap", got, err)
				}
				break
			}
			got++
		}
		if got != 0 {
			t.Fatalf("%d messages before the gap, want it said at once (the reader takes everything as changed)", got)
		}
		if _, err := sub.Next(ctx); !errors.Is(err, ErrLiveGap) {
			t.Fatalf("an ended subscription went on: %v", err)
		}
	})
}
