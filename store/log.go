package store

import (
	"context"
	"sync/atomic"
	"time"
)

// Event is one line of a run's log.
type Event struct {
	ID                int64
	RunID             int64
	App, Region, Host string
	Kind, Message     string
	At                time.Time
}

// AddEvent appends to the event log.
func (s *Store) AddEvent(ctx context.Context, e Event) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO events (run_id, app, region, host, kind, message, at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		e.RunID, e.App, e.Region, e.Host, e.Kind, e.Message, s.nowNS())
	return err
}

// Events lists a run's events in order (runID 0: the newest events of every run).
func (s *Store) Events(ctx context.Context, runID int64, limit int) ([]Event, error) {
	if limit <= 0 {
		limit = 500
	}
	q := `SELECT id, run_id, app, region, host, kind, message, at FROM events WHERE run_id = ? ORDER BY id LIMIT ?`
	args := []any{runID, limit}
	if runID == 0 {
		q = `SELECT id, run_id, app, region, host, kind, message, at FROM events ORDER BY id DESC LIMIT ?`
		args = []any{limit}
	}
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		var e Event
		var at int64
		if err := rows.Scan(&e.ID, &e.RunID, &e.App, &e.Region, &e.Host, &e.Kind, &e.Message, &at); err != nil {
			return nil, err
		}
		e.At = fromNS(at)
		out = append(out, e)
	}
	return out, rows.Err()
}

// Audit is one entry of the audit log: who did what, from where, when, and how it ended.
// ActorID is the verified identity (pipeline.Actor.Key); Actor is its display name.
type Audit struct {
	ID               int64
	At               time.Time
	Actor, ActorID   string
	Via              string
	Action           string
	App, Region, SHA string
	Args             string
	Outcome, Detail  string
}

// AddAudit appends to the audit log, on its own: for what changed nothing (a refusal, a
// failure); a change is audited in its own transaction (AuditNote).
func (s *Store) AddAudit(ctx context.Context, a Audit) error {
	return s.db.tx(ctx, func(tx tx) error { return s.addAudit(ctx, tx, a) }) // never with a note's entry
}

func (s *Store) addAudit(ctx context.Context, tx tx, a Audit) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO audit (at, actor, actor_id, via, action, app, region, sha, args, outcome, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		s.nowNS(), a.Actor, a.ActorID, a.Via, a.Action, a.App, a.Region, a.SHA, a.Args, a.Outcome, a.Detail)
	return err
}

// AuditNote is the audit entry of a change, written in the change's own transaction: a
// write of the store's made with a context from With (a lock put, a stage promoted, a
// rollback planned, ...) inserts the entry before it commits, so the change and the entry
// saying who made it are committed together or not at all. The first such write that
// commits takes the entry; Written says whether one did. A write that changes nothing (a
// stale state, a failure) rolls the entry back with it.
type AuditNote struct {
	entry   Audit
	written atomic.Bool
}

// NewAuditNote is the note of entry a, to be written with a change.
func NewAuditNote(a Audit) *AuditNote { return &AuditNote{entry: a} }

type auditKey struct{}

// With is ctx carrying the note to the store's writes.
func (n *AuditNote) With(ctx context.Context) context.Context {
	return context.WithValue(ctx, auditKey{}, n)
}

// Written reports whether a change committed with the entry.
func (n *AuditNote) Written() bool { return n.written.Load() }

// Entry is the entry the note writes.
func (n *AuditNote) Entry() Audit { return n.entry }

// pendingAudit is the note a write under ctx must write, nil when none is left to write.
func pendingAudit(ctx context.Context) *AuditNote {
	n, _ := ctx.Value(auditKey{}).(*AuditNote)
	if n == nil || n.written.Load() {
		return nil
	}
	return n
}

// Audits lists the audit log, newest first; app "" means every app.
func (s *Store) Audits(ctx context.Context, app string, limit int) ([]Audit, error) {
	return s.AuditPage(ctx, AuditFilter{App: app, Limit: limit})
}

// AuditFilter selects a page of the audit log. Empty fields match everything; Person
// matches an actor's id or name; Before pages back: only entries with a smaller id.
type AuditFilter struct {
	App, Region, Person string
	Before              int64
	Limit               int // default 100
}

// AuditPage lists the audit entries a filter selects, newest first.
func (s *Store) AuditPage(ctx context.Context, f AuditFilter) ([]Audit, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	rows, err := s.db.QueryContext(ctx, `SELECT id, at, actor, actor_id, via, action, app, region, sha, args, outcome, detail FROM audit
		WHERE (? = '' OR app = ?) AND (? = '' OR region = ?) AND (? = '' OR actor_id = ? OR actor = ?) AND (? = 0 OR id < ?)
		ORDER BY id DESC LIMIT ?`, f.App, f.App, f.Region, f.Region, f.Person, f.Person, f.Person, f.Before, f.Before, f.Limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Audit
	for rows.Next() {
		var a Audit
		var at int64
		if err := rows.Scan(&a.ID, &at, &a.Actor, &a.ActorID, &a.Via, &a.Action, &a.App, &a.Region, &a.SHA, &a.Args, &a.Outcome, &a.Detail); err != nil {
			return nil, err
		}
		a.At = fromNS(at)
		out = append(out, a)
	}
	return out, rows.Err()
}
