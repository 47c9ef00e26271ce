package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// SetLive records that sha is live on a host (after the switch succeeded).
func (s *Store) SetLive(ctx context.Context, app, region, host, sha string) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO live (app, region, host, sha, updated_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (app, region, host) DO UPDATE SET sha = excluded.sha, updated_at = excluded.updated_at`, app, region, host, sha, s.nowNS())
	if err != nil {
		return fmt.Errorf("live %s/%s/%s: %w", app, region, host, err)
	}
	return nil
}

// Live returns, per host of a region, the SHA live there.
func (s *Store) Live(ctx context.Context, app, region string) (map[string]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT host, sha FROM live WHERE app = ? AND region = ?`, app, region)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var h, sha string
		if err := rows.Scan(&h, &sha); err != nil {
			return nil, err
		}
		out[h] = sha
	}
	return out, rows.Err()
}

// HistoryEntry is one release going live in a region.
type HistoryEntry struct {
	ID          int64
	App, Region string
	SHA         string
	Action      string // seed, deploy, promote, rollback
	Actor       string // display name
	ActorID     string // the verified identity (pipeline.Actor.Key)
	Via         string
	RunID       int64
	At          time.Time
}

// AddHistory records a release going live in a region.
func (s *Store) AddHistory(ctx context.Context, h HistoryEntry) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO region_history (app, region, sha, action, actor, actor_id, via, run_id, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		h.App, h.Region, h.SHA, h.Action, h.Actor, h.ActorID, h.Via, h.RunID, s.nowNS())
	return err
}

// History lists what went live, newest first; region "" means every region.
func (s *Store) History(ctx context.Context, app, region string, limit int) ([]HistoryEntry, error) {
	return s.HistoryPage(ctx, HistoryFilter{App: app, Region: region, Limit: limit})
}

// HistoryFilter selects a page of a region's history. Region "" means every region of
// the app; Before pages back: only entries with a smaller id.
type HistoryFilter struct {
	App, Region string
	Before      int64
	Limit       int // default 50
}

// HistoryPage lists the history entries a filter selects, newest first.
func (s *Store) HistoryPage(ctx context.Context, f HistoryFilter) ([]HistoryEntry, error) {
	if f.Limit <= 0 {
		f.Limit = 50
	}
	rows, err := s.db.QueryContext(ctx, `SELECT id, app, region, sha, action, actor, actor_id, via, run_id, at FROM region_history
		WHERE app = ? AND (? = '' OR region = ?) AND (? = 0 OR id < ?) ORDER BY id DESC LIMIT ?`, f.App, f.Region, f.Region, f.Before, f.Before, f.Limit)
	if err != nil {
		return nil, fmt.Errorf("history of %s %s: %w", f.App, f.Region, err)
	}
	defer rows.Close()
	var out []HistoryEntry
	for rows.Next() {
		var h HistoryEntry
		var at int64
		if err := rows.Scan(&h.ID, &h.App, &h.Region, &h.SHA, &h.Action, &h.Actor, &h.ActorID, &h.Via, &h.RunID, &at); err != nil {
			return nil, err
		}
		h.At = fromNS(at)
		out = append(out, h)
	}
	return out, rows.Err()
}

// Lock is a deploy freeze on a region. HolderID is the verified identity of who holds
// it (only they unlock it without --force); Holder is their name, for display.
type Lock struct {
	App, Region, Holder, Reason string
	HolderID                    string
	At                          time.Time
}

// ErrLocked is returned when a region is already locked.
var ErrLocked = errors.New("region is locked")

// PutLock locks a region; it fails with ErrLocked if someone holds it already.
func (s *Store) PutLock(ctx context.Context, l Lock) error {
	err := s.tx(ctx, func(tx tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO locks (app, region, holder, holder_id, reason, at) VALUES (?, ?, ?, ?, ?, ?)`, l.App, l.Region, l.Holder, l.HolderID, l.Reason, s.nowNS())
		return err
	})
	if isUniqueViolation(err) {
		holder := "someone"
		if cur, gerr := s.Lock(ctx, l.App, l.Region); gerr == nil {
			holder = cur.Holder
		}
		return fmt.Errorf("%s/%s held by %s: %w", l.App, l.Region, holder, ErrLocked)
	}
	if err != nil {
		return fmt.Errorf("lock %s/%s: %w", l.App, l.Region, err)
	}
	return nil
}

// DeleteLock removes a region's lock l, as it was read (Lock): a lock lifted and taken
// again since, by someone else or with another reason, is left as it is (ErrStateChanged).
func (s *Store) DeleteLock(ctx context.Context, l Lock) error {
	err := s.tx(ctx, func(tx tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM locks WHERE app = ? AND region = ? AND holder_id = ? AND reason = ? AND at = ?`,
			l.App, l.Region, l.HolderID, l.Reason, l.At.UnixNano())
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return fmt.Errorf("the lock changed since it was read: %w", ErrStateChanged)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("unlock %s/%s: %w", l.App, l.Region, err)
	}
	return nil
}

// Lock returns a region's lock, or ErrNotFound.
func (s *Store) Lock(ctx context.Context, app, region string) (Lock, error) {
	var l Lock
	var at int64
	err := s.db.QueryRowContext(ctx, `SELECT app, region, holder, holder_id, reason, at FROM locks WHERE app = ? AND region = ?`, app, region).Scan(&l.App, &l.Region, &l.Holder, &l.HolderID, &l.Reason, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return Lock{}, ErrNotFound
	}
	l.At = fromNS(at)
	return l, err
}

// Locks lists an app's locks.
func (s *Store) Locks(ctx context.Context, app string) ([]Lock, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT app, region, holder, holder_id, reason, at FROM locks WHERE (? = '' OR app = ?) ORDER BY app, region`, app, app)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Lock
	for rows.Next() {
		var l Lock
		var at int64
		if err := rows.Scan(&l.App, &l.Region, &l.Holder, &l.HolderID, &l.Reason, &at); err != nil {
			return nil, err
		}
		l.At = fromNS(at)
		out = append(out, l)
	}
	return out, rows.Err()
}
