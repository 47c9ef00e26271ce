package wait

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestSleepEndsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	if err := Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("Sleep on a cancelled context: %v", err)
	}
	if time.Since(start) > time.Second {
		t.Fatal("Sleep did not end with its context")
	}
	if err := Sleep(context.Background(), time.Millisecond); err != nil {
		t.Fatal(err)
	}
}

func TestUntilRetriesAndGivesUpAtItsLimit(t *testing.T) {
	n := 0
	err := Until(context.Background(), Backoff{First: time.Millisecond, Max: 4 * time.Millisecond}, 0, func(context.Context) error {
		if n++; n < 4 {
			return errors.New("not yet")
		}
		return nil
	})
	if err != nil || n != 4 {
		t.Fatalf("Until: %v after %d tries", err, n)
	}
	err = Until(context.Background(), Backoff{First: time.Millisecond, Max: time.Millisecond}, 20*time.Millisecond, func(context.Context) error {
		return errors.New("never")
	})
	if !errors.Is(err, context.DeadlineExceeded) || err.Error() == "" {
		t.Fatalf("Until past its limit: %v", err)
	}
}

func TestBackoffDoublesUpToItsMax(t *testing.T) {
	b := Backoff{First: time.Second, Max: 3 * time.Second}
	var got []time.Duration
	for d := time.Duration(0); len(got) < 4; {
		d = b.Next(d)
		got = append(got, d)
	}
	want := []time.Duration{time.Second, 2 * time.Second, 3 * time.Second, 3 * time.Second}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("backoff %v, want %v", got, want)
		}
	}
}
