package slackbot

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"github.com/immunity-app/immunity/store"
)

// The worker delivers the Slack rows of the store's outbox: the oldest row of each
// stream, in order, until Slack accepts it. A rate limit (429) stops every Slack call for
// the Retry-After Slack gave, however long, and the row keeps that time in the store, so
// a restarted server waits it out too. Other failures are retried with backoff; a row
// Slack refuses for good (an unknown channel, bad blocks) is dropped after a few tries and
// logged. Edits of one message go out at most once a second, the newest content only.
// Replicas sharing a database deliver it once: only the holder of the lease outboxLease
// delivers, and each row's outcome is a write fenced by that lease.

// outboxLease names the lease of the Slack outbox's delivery.
const outboxLease = "outbox/slack"

// Clock is the worker's time: the real one by default; tests run it faster.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

var (
	errWait      = errors.New("not yet")
	errPermanent = errors.New("refused for good")
)

// permanentErrors are Slack's answers that no retry will change.
var permanentErrors = []string{"channel_not_found", "not_in_channel", "is_archived", "invalid_auth", "account_inactive",
	"token_revoked", "invalid_blocks", "msg_too_long", "no_text", "cant_update_message", "message_not_found", "missing_scope"}

// Delivery pacing.
const (
	editEvery   = time.Second     // at most one edit of a message per second
	idleCheck   = 5 * time.Second // a look at the outbox when nothing woke the worker
	maxBackoff  = 5 * time.Minute // between tries of a failing row
	maxAttempts = 8               // of a row Slack refuses for good
	waitRetry   = 200 * time.Millisecond
	leaseWait   = time.Second // before a replica not holding the lease looks again
)

func (b *Bot) wakeUp() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// deliverLoop delivers until ctx ends.
func (b *Bot) deliverLoop(ctx context.Context) {
	defer close(b.worked)
	for {
		next := b.deliverDue(ctx)
		select {
		case <-ctx.Done():
			return
		case <-b.wake:
		case <-b.clock.After(next):
		}
	}
}

// deliverDue delivers every row that is due now and says how long until the next one is.
func (b *Bot) deliverDue(ctx context.Context) time.Duration {
	b.mu.Lock()
	b.busy = true
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		b.busy = false
		b.mu.Unlock()
	}()
	wait := idleCheck
	for ctx.Err() == nil {
		now := b.clock.Now()
		if now.Before(b.pausedUntil) {
			return b.pausedUntil.Sub(now)
		}
		if _, held := b.lease.Lease(); !held {
			return leaseWait // another replica delivers, or the store is out of reach
		}
		heads, err := b.st.OutboxHeads(ctx, "slack/", 200)
		if err != nil {
			b.log.Error("slack outbox", "err", err)
			return time.Second
		}
		progress := false
		for _, row := range heads {
			if d := row.NotBefore.Sub(now); d > 0 {
				wait = min(wait, d)
				continue
			}
			if row.Kind == kindEdit {
				if d := b.lastEdit[row.Stream].Add(editEvery).Sub(now); d > 0 {
					wait = min(wait, d)
					continue
				}
			}
			l, held := b.lease.Lease()
			if !held {
				return leaseWait
			}
			done, pause := b.try(ctx, l, row, now)
			if pause > 0 {
				return pause
			}
			progress = progress || done
		}
		if !progress {
			return wait
		}
	}
	return wait
}

// try makes one row's call and records how it went; done is true when the row is
// finished, pause > 0 when Slack asked every call to wait.
func (b *Bot) try(ctx context.Context, l store.Lease, row store.OutboxItem, now time.Time) (done bool, pause time.Duration) {
	err := b.deliver(ctx, row, func() error { return b.st.OutboxTrying(ctx, l, row.ID) })
	if row.Kind == kindEdit {
		b.lastEdit[row.Stream] = now
	}
	var rl *slack.RateLimitedError
	switch {
	case err == nil:
		sent, err := b.st.OutboxDelivered(ctx, l, row)
		if err != nil {
			b.log.Error("slack outbox", "err", err)
			return false, 0
		}
		return sent, 0 // not sent: a newer edit came in meanwhile, and goes next
	case errors.Is(err, errWait):
		if err := b.st.OutboxDefer(ctx, l, row.ID, now.Add(waitRetry)); err != nil {
			b.log.Error("slack outbox", "err", err)
		}
		return false, 0
	case errors.As(err, &rl):
		ra := max(rl.RetryAfter, time.Second)
		b.pausedUntil = now.Add(ra)
		b.log.Info("slack rate limited; waiting", append(b.about(ctx, row), "retry_after", ra)...)
		if b.waited != nil {
			b.waited(ra)
		}
		b.retry(ctx, l, row, b.pausedUntil, err.Error())
		return false, ra
	case ctx.Err() != nil:
		return false, 0
	case permanent(err) && row.Attempts+1 >= maxAttempts:
		b.log.Error("slack refused a call for good; dropped", append(b.about(ctx, row), "tries", row.Attempts+1, "err", err)...)
		if err := b.st.OutboxDone(ctx, l, row.ID, store.OutboxDropped, err.Error()); err != nil {
			b.log.Error("slack outbox", "err", err)
		}
		return true, 0
	}
	delay := min(time.Second<<min(row.Attempts, 10), maxBackoff)
	b.log.Warn("slack call failed; will retry", append(b.about(ctx, row), "try", row.Attempts+1, "in", delay, "err", err)...)
	b.retry(ctx, l, row, now.Add(delay), err.Error())
	return false, 0
}

// about is what an outbox row's log lines say it is about: the call and its stream and,
// for a run's thread, the run with its app and release (read from the store: these lines
// are rare), or the app of a channel post.
func (b *Bot) about(ctx context.Context, row store.OutboxItem) []any {
	out := []any{"call", row.Kind, "stream", row.Stream}
	var it outboxItem
	if json.Unmarshal([]byte(row.Payload), &it) == nil && it.RunID != 0 {
		if r, err := b.st.Run(ctx, it.RunID); err == nil {
			return append(out, "app", r.App, "run", r.ID, "sha", r.SHA)
		}
		return append(out, "run", it.RunID)
	}
	if app, ok := strings.CutPrefix(row.Stream, "slack/channel/"); ok {
		out = append(out, "app", app)
	}
	return out
}

func (b *Bot) retry(ctx context.Context, l store.Lease, row store.OutboxItem, at time.Time, why string) {
	if b.retried != nil {
		b.retried()
	}
	if err := b.st.OutboxRetry(ctx, l, row.ID, at, why); err != nil {
		b.log.Error("slack outbox", "err", err)
	}
}

func permanent(err error) bool {
	if errors.Is(err, errPermanent) {
		return true
	}
	for _, p := range permanentErrors {
		if strings.Contains(err.Error(), p) {
			return true
		}
	}
	return false
}

// Flush waits until every Slack row recorded so far is delivered (or dropped), or ctx
// ends (tests, the demo).
func (b *Bot) Flush(ctx context.Context) {
	for ctx.Err() == nil {
		heads, err := b.st.OutboxHeads(ctx, "slack/", 1)
		b.mu.Lock()
		busy := b.busy
		b.mu.Unlock()
		if err != nil || (len(heads) == 0 && !busy) {
			return
		}
		b.wakeUp()
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Millisecond):
		}
	}
}
