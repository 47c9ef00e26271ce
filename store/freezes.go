package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Freeze is a deploy freeze until a time: of one region of an app, of every region of an
// app (Region ""), or of every app (App "", an org-wide freeze). Actor and ActorID are
// who froze, as verified.
type Freeze struct {
	ID                 int64
	App, Region        string
	Until              time.Time
	Reason             string
	Actor, ActorID     string
	Via                string
	At                 time.Time
	Lifted             time.Time // zero while it holds
	LiftedBy, LiftedID string
}

// Covers says whether the freeze holds a region of an app.
func (f Freeze) Covers(app, region string) bool {
	return (f.App == "" || f.App == app) && (f.Region == "" || f.Region == region)
}

// AddFreezes records freezes (one per region) in one transaction.
func (s *Store) AddFreezes(ctx context.Context, fs []Freeze) error {
	return s.tx(ctx, func(tx tx) error {
		for _, f := range fs {
			_, err := tx.ExecContext(ctx, `INSERT INTO freezes (app, region, until_at, reason, actor, actor_id, via, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
				f.App, f.Region, f.Until.UnixNano(), f.Reason, f.Actor, f.ActorID, f.Via, s.nowNS())
			if err != nil {
				return fmt.Errorf("freeze %s/%s: %w", orAll(f.App), orAll(f.Region), err)
			}
		}
		return nil
	})
}

// Freezes lists the freezes holding at now that concern app ("" means those of every app
// and the org-wide ones), oldest first.
func (s *Store) Freezes(ctx context.Context, app string, now time.Time) ([]Freeze, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, app, region, until_at, reason, actor, actor_id, via, at, lifted_at, lifted_by, lifted_by_id FROM freezes
		WHERE lifted_at = 0 AND until_at > ? AND (? = '' OR app = '' OR app = ?) ORDER BY id`, now.UnixNano(), app, app)
	if err != nil {
		return nil, fmt.Errorf("freezes of %s: %w", orAll(app), err)
	}
	defer rows.Close()
	var out []Freeze
	for rows.Next() {
		var f Freeze
		var until, at, lifted int64
		if err := rows.Scan(&f.ID, &f.App, &f.Region, &until, &f.Reason, &f.Actor, &f.ActorID, &f.Via, &at, &lifted, &f.LiftedBy, &f.LiftedID); err != nil {
			return nil, fmt.Errorf("freezes of %s: %w", orAll(app), err)
		}
		f.Until, f.At, f.Lifted = fromNS(until), fromNS(at), fromNS(lifted)
		out = append(out, f)
	}
	return out, rows.Err()
}

// LiftFreezes ends the freezes holding at now on the app's regions named (none: every
// freeze of the app; app "": the org-wide ones), recording who lifted them; it returns
// the freezes lifted (none is not an error). A freeze lifted by someone else between the
// read and the write: ErrStateChanged, and nothing lifted.
func (s *Store) LiftFreezes(ctx context.Context, app string, regions []string, now time.Time, by, byID string) ([]Freeze, error) {
	open, err := s.Freezes(ctx, app, now)
	if err != nil {
		return nil, err
	}
	var lift []Freeze
	for _, f := range open {
		if f.App != app || (len(regions) > 0 && !slices.Contains(regions, f.Region)) {
			continue
		}
		lift = append(lift, f)
	}
	if len(lift) == 0 {
		return nil, nil
	}
	err = s.tx(ctx, func(tx tx) error {
		for _, f := range lift {
			res, err := tx.ExecContext(ctx, `UPDATE freezes SET lifted_at = ?, lifted_by = ?, lifted_by_id = ? WHERE id = ? AND lifted_at = 0`, s.nowNS(), by, byID, f.ID)
			if err != nil {
				return fmt.Errorf("unfreeze %s/%s: %w", orAll(f.App), orAll(f.Region), err)
			}
			if n, err := res.RowsAffected(); err != nil {
				return fmt.Errorf("unfreeze %s/%s: %w", orAll(f.App), orAll(f.Region), err)
			} else if n == 0 {
				return fmt.Errorf("unfreeze %s/%s: lifted meanwhile: %w", orAll(f.App), orAll(f.Region), ErrStateChanged)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return lift, nil
}

func orAll(s string) string {
	if strings.TrimSpace(s) == "" {
		return "*"
	}
	return s
}

// SetClock replaces the store's clock (the times it records); tests of time-bound rules
// (soak, freezes) share one fake clock between the store and the engine.
func (s *Store) SetClock(now func() time.Time) { s.now = now }
