// Package wait is the one way Immunity's code pauses: every wait ends early when its
// context does, and every poll has a limit. Retries with backoff (GitHub and Slack calls,
// SSH sessions, health checks) sleep through Sleep; conditions are polled with Until.
package wait

import (
	"context"
	"fmt"
	"time"
)

// Sleep waits d, or until ctx is done; it returns ctx's error when the wait was cut
// short. A d of zero or less only checks ctx.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Backoff is a sequence of waits: First, doubled each time up to Max.
type Backoff struct {
	First, Max time.Duration
}

// Next returns the wait after prev (First when prev is zero).
func (b Backoff) Next(prev time.Duration) time.Duration {
	if prev <= 0 {
		return b.First
	}
	return min(2*prev, b.Max)
}

// Until calls try until it succeeds, waiting b's backoff between calls, and gives up when
// ctx ends or limit has passed (limit <= 0: no limit but ctx's). The error then names
// the last failure.
func Until(ctx context.Context, b Backoff, limit time.Duration, try func(ctx context.Context) error) error {
	if limit > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, limit)
		defer cancel()
	}
	var d time.Duration
	for {
		err := try(ctx)
		if err == nil {
			return nil
		}
		d = b.Next(d)
		if serr := Sleep(ctx, d); serr != nil {
			return fmt.Errorf("%w (last attempt: %w)", serr, err)
		}
	}
}
