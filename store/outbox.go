package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// OutboxItem is one effect waiting to be delivered to Slack or GitHub.
type OutboxItem struct {
	ID     int64
	Stream string // delivered in order within a stream: "slack/run/12", "github/run/12"
	Kind   string // what the worker does with Payload
	// Coalesce: a pending item with the same key is given this Payload instead of a new
	// item being added (only the newest state of a message is sent).
	Coalesce string
	// Dedupe: an item with this key is added once ever (a post of a thread).
	Dedupe    string
	Payload   string
	State     string // pending, sent, dropped
	Attempts  int
	NotBefore time.Time
	LastError string
	Created   time.Time
	// Tried: its call was about to be sent before (OutboxTrying), so it may have had its
	// effect already though no answer was recorded.
	Tried bool
}

// Outbox item states.
const (
	OutboxPending = "pending"
	OutboxSent    = "sent"
	OutboxDropped = "dropped"
)

// Enqueue adds an item to the outbox (or, with Coalesce, replaces the payload of the
// pending item of that key). added is false when its Dedupe key was seen before.
func (s *Store) Enqueue(ctx context.Context, it OutboxItem) (added bool, err error) {
	var dedupe any
	if it.Dedupe != "" {
		dedupe = it.Dedupe
	}
	now := s.nowNS()
	var nb int64
	if !it.NotBefore.IsZero() {
		nb = it.NotBefore.UnixNano()
	}
	if it.Coalesce != "" {
		_, err = s.db.ExecContext(ctx, `INSERT INTO outbox (stream, kind, coalesce_key, dedupe_key, payload, state, not_before, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (coalesce_key) WHERE state = 'pending' AND coalesce_key <> '' DO UPDATE SET payload = excluded.payload, kind = excluded.kind`,
			it.Stream, it.Kind, it.Coalesce, dedupe, it.Payload, OutboxPending, nb, now)
		added = err == nil
	} else {
		var res sql.Result
		res, err = s.db.ExecContext(ctx, `INSERT INTO outbox (stream, kind, dedupe_key, payload, state, not_before, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (dedupe_key) DO NOTHING`, it.Stream, it.Kind, dedupe, it.Payload, OutboxPending, nb, now)
		if err == nil {
			n, _ := res.RowsAffected()
			added = n == 1
		}
	}
	if err != nil {
		return false, fmt.Errorf("outbox: enqueue %s on %s: %w", it.Kind, it.Stream, err)
	}
	return added, nil
}

const outboxCols = `id, stream, kind, coalesce_key, dedupe_key, payload, state, attempts, not_before, last_error, created_at, tried_at`

// OutboxHeads returns, for each stream whose name starts with prefix, its oldest pending
// item (the only one that may be delivered now: a stream is delivered in order), oldest
// streams first, at most limit.
func (s *Store) OutboxHeads(ctx context.Context, prefix string, limit int) ([]OutboxItem, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+outboxCols+` FROM outbox o WHERE state = ? AND stream LIKE ? || '%'
		AND id = (SELECT min(id) FROM outbox p WHERE p.state = ? AND p.stream = o.stream) ORDER BY id LIMIT ?`,
		OutboxPending, prefix, OutboxPending, limit)
	if err != nil {
		return nil, fmt.Errorf("outbox heads: %w", err)
	}
	defer rows.Close()
	var out []OutboxItem
	for rows.Next() {
		var it OutboxItem
		var dedupe sql.NullString
		var nb, c, tried int64
		if err := rows.Scan(&it.ID, &it.Stream, &it.Kind, &it.Coalesce, &dedupe, &it.Payload, &it.State, &it.Attempts, &nb, &it.LastError, &c, &tried); err != nil {
			return nil, fmt.Errorf("outbox heads: %w", err)
		}
		it.Dedupe, it.NotBefore, it.Created, it.Tried = dedupe.String, fromNS(nb), fromNS(c), tried != 0
		out = append(out, it)
	}
	return out, rows.Err()
}

// OutboxItemByID returns one item.
func (s *Store) OutboxItemByID(ctx context.Context, id int64) (OutboxItem, error) {
	var it OutboxItem
	var dedupe sql.NullString
	var nb, c, tried int64
	err := s.db.QueryRowContext(ctx, `SELECT `+outboxCols+` FROM outbox WHERE id = ?`, id).Scan(&it.ID, &it.Stream, &it.Kind, &it.Coalesce, &dedupe, &it.Payload, &it.State, &it.Attempts, &nb, &it.LastError, &c, &tried)
	if errors.Is(err, sql.ErrNoRows) {
		return it, fmt.Errorf("outbox item %d: %w", id, ErrNotFound)
	}
	it.Dedupe, it.NotBefore, it.Created, it.Tried = dedupe.String, fromNS(nb), fromNS(c), tried != 0
	return it, err
}

// OutboxDone marks an item given up (dropped, with why) or sent. Like OutboxDelivered,
// OutboxRetry and OutboxDefer it is a fenced write: it changes nothing, and answers
// ErrLeaseLost, unless the worker still holds the outbox's lease l.
func (s *Store) OutboxDone(ctx context.Context, l Lease, id int64, state, why string) error {
	_, err := s.fenced(ctx, l, fmt.Sprintf("outbox: item %d %s", id, state),
		`UPDATE outbox SET state = ?, last_error = ?, attempts = attempts + 1, sent_at = ? WHERE id = ?`, state, why, s.nowNS(), id)
	return err
}

// OutboxDelivered marks an item sent, unless a newer payload was coalesced into it while
// it was being sent: then it stays pending (sent says so), and the newer payload goes
// next. Marking it sent by id alone would lose that newer payload.
func (s *Store) OutboxDelivered(ctx context.Context, l Lease, it OutboxItem) (sent bool, err error) {
	n, err := s.fenced(ctx, l, fmt.Sprintf("outbox: item %d sent", it.ID),
		`UPDATE outbox SET state = ?, last_error = '', attempts = attempts + 1, sent_at = ? WHERE id = ? AND payload = ?`,
		OutboxSent, s.nowNS(), it.ID, it.Payload)
	return n == 1, err
}

// OutboxTrying records that an item's call is about to be sent, before it is: from then
// on the item may have had its effect even if no answer is ever recorded, and a later
// try of it (Tried) looks for that effect first. Only the first try writes.
func (s *Store) OutboxTrying(ctx context.Context, l Lease, id int64) error {
	_, err := s.fenced(ctx, l, fmt.Sprintf("outbox: trying item %d", id), `UPDATE outbox SET tried_at = ? WHERE id = ? AND tried_at = 0`, s.nowNS(), id)
	return err
}

// OutboxRetry records a failed attempt; the item (and its stream) waits until notBefore.
func (s *Store) OutboxRetry(ctx context.Context, l Lease, id int64, notBefore time.Time, why string) error {
	_, err := s.fenced(ctx, l, fmt.Sprintf("outbox: retry item %d", id),
		`UPDATE outbox SET attempts = attempts + 1, not_before = ?, last_error = ? WHERE id = ?`, notBefore.UnixNano(), why, id)
	return err
}

// OutboxDefer puts an item (and its stream) off until notBefore without counting a try.
func (s *Store) OutboxDefer(ctx context.Context, l Lease, id int64, notBefore time.Time) error {
	_, err := s.fenced(ctx, l, fmt.Sprintf("outbox: defer item %d", id), `UPDATE outbox SET not_before = ? WHERE id = ?`, notBefore.UnixNano(), id)
	return err
}

// OutboxStats is how much waits in the outbox, per service (the stream's first word).
type OutboxStats struct {
	Service string
	Depth   int           // pending items
	Oldest  time.Duration // age of the oldest pending item
}

// OutboxStats reports the pending items of each service that has any.
func (s *Store) OutboxStats(ctx context.Context) ([]OutboxStats, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT stream, created_at FROM outbox WHERE state = ?`, OutboxPending)
	if err != nil {
		return nil, fmt.Errorf("outbox stats: %w", err)
	}
	defer rows.Close()
	now := s.now()
	by := map[string]*OutboxStats{}
	var order []string
	for rows.Next() {
		var stream string
		var c int64
		if err := rows.Scan(&stream, &c); err != nil {
			return nil, fmt.Errorf("outbox stats: %w", err)
		}
		svc := stream
		for i := range stream {
			if stream[i] == '/' {
				svc = stream[:i]
				break
			}
		}
		st := by[svc]
		if st == nil {
			st = &OutboxStats{Service: svc}
			by[svc] = st
			order = append(order, svc)
		}
		st.Depth++
		st.Oldest = max(st.Oldest, now.Sub(fromNS(c)))
	}
	out := make([]OutboxStats, 0, len(order))
	for _, svc := range order {
		out = append(out, *by[svc])
	}
	return out, rows.Err()
}

// PruneOutbox deletes delivered and dropped items older than age.
func (s *Store) PruneOutbox(ctx context.Context, age time.Duration) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM outbox WHERE state <> ? AND sent_at < ?`, OutboxPending, s.now().Add(-age).UnixNano())
	if err != nil {
		return fmt.Errorf("outbox: prune: %w", err)
	}
	return nil
}

// enqueueTx adds an item within a transaction; an item whose Dedupe key was added before
// fails (the unique index on dedupe_key), and so does the transaction.
func enqueueTx(ctx context.Context, tx tx, it OutboxItem, now int64) error {
	var dedupe any
	if it.Dedupe != "" {
		dedupe = it.Dedupe
	}
	var nb int64
	if !it.NotBefore.IsZero() {
		nb = it.NotBefore.UnixNano()
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO outbox (stream, kind, dedupe_key, payload, state, not_before, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		it.Stream, it.Kind, dedupe, it.Payload, OutboxPending, nb, now)
	if err != nil {
		return fmt.Errorf("outbox: enqueue %s on %s: %w", it.Kind, it.Stream, err)
	}
	return nil
}
