package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// SlackThread is where a run's Slack thread lives: its channel and root message's ts.
type SlackThread struct {
	RunID   int64
	Channel string
	TS      string
	// Tried (ClaimSlackRoot's claim only): an earlier claim of the root was never followed
	// by its thread, so its post may have reached Slack with its answer lost.
	Tried bool
}

// ErrRootClaimed is ClaimSlackRoot's answer when another replica is posting the run's root:
// wait for its thread, do not post another.
var ErrRootClaimed = errors.New("another replica is posting the root")

// SlackThread returns a run's thread; found is false when none was posted (a root claimed
// but not yet posted is not a thread).
func (s *Store) SlackThread(ctx context.Context, runID int64) (th SlackThread, found bool, err error) {
	th = SlackThread{RunID: runID}
	err = s.db.QueryRowContext(ctx, `SELECT channel, ts FROM slack_threads WHERE run_id = ? AND ts <> ''`, runID).Scan(&th.Channel, &th.TS)
	if errors.Is(err, sql.ErrNoRows) {
		return SlackThread{}, false, nil
	}
	if err != nil {
		return SlackThread{}, false, fmt.Errorf("slack thread of run %d: %w", runID, err)
	}
	return th, true, nil
}

// ClaimSlackRoot claims the posting of a run's root message for this replica, by the
// run's one row in slack_threads (its primary key decides between replicas racing). It
// answers the thread when the root was posted already (found: post nothing, thread under
// it), nothing when this replica now holds the claim (post, then SaveSlackThread), and
// ErrRootClaimed while another replica holds it. A claim never followed by its thread (its
// replica died between claim and post, or the post's answer was lost) is taken over once
// it is older than a lease, or at once by the replica that made it; such a claim answers
// Tried, and the root is looked for in its channel before it is posted again.
func (s *Store) ClaimSlackRoot(ctx context.Context, runID int64) (th SlackThread, found bool, err error) {
	err = s.tx(ctx, func(tx tx) error {
		now := s.leaseNS()
		var before string
		err := tx.QueryRowContext(ctx, `SELECT ts FROM slack_threads WHERE run_id = ?`, runID).Scan(&before)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		tried := err == nil
		var claimer string
		err = tx.QueryRowContext(ctx, `INSERT INTO slack_threads (run_id, channel, ts, created_at, claimed_by) VALUES (?, '', '', ?, ?)
			ON CONFLICT (run_id) DO UPDATE SET created_at = excluded.created_at, claimed_by = excluded.claimed_by
			WHERE slack_threads.ts = '' AND (slack_threads.claimed_by = excluded.claimed_by OR slack_threads.created_at < ?)
			RETURNING claimed_by`, runID, now, s.replica, now-s.leaseTTL.Nanoseconds()).Scan(&claimer)
		if err == nil {
			th = SlackThread{RunID: runID, Tried: tried}
			return nil // ours
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		th = SlackThread{RunID: runID}
		err = tx.QueryRowContext(ctx, `SELECT channel, ts FROM slack_threads WHERE run_id = ?`, runID).Scan(&th.Channel, &th.TS)
		if err != nil {
			return err
		}
		if th.TS == "" {
			return ErrRootClaimed
		}
		found = true
		return nil
	})
	if errors.Is(err, ErrRootClaimed) {
		return SlackThread{}, false, fmt.Errorf("root of run %d: %w", runID, err)
	}
	if err != nil {
		return SlackThread{}, false, fmt.Errorf("claim the slack root of run %d: %w", runID, err)
	}
	return th, found, nil
}

// SaveSlackThread records the thread of a root this replica claimed and posted. It fails
// with ErrRootClaimed when the claim is no longer this replica's (another took it over);
// a thread already recorded is kept.
func (s *Store) SaveSlackThread(ctx context.Context, th SlackThread) error {
	if th.Channel == "" || th.TS == "" {
		return fmt.Errorf("save slack thread of run %d: no channel or ts", th.RunID)
	}
	res, err := s.db.ExecContext(ctx, `UPDATE slack_threads SET channel = ?, ts = ? WHERE run_id = ? AND ts = '' AND claimed_by = ?`,
		th.Channel, th.TS, th.RunID, s.replica)
	if err != nil {
		return fmt.Errorf("save slack thread of run %d: %w", th.RunID, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 1 {
		return err
	}
	return fmt.Errorf("save slack thread of run %d: %w", th.RunID, ErrRootClaimed)
}

// FirstSlackSignature records a verified Slack request's signature until expires, and
// reports whether this was its first use on any replica sharing the database: a request
// replayed while its timestamp is still accepted finds its signature recorded. Signatures
// whose time has passed are forgotten on the way.
func (s *Store) FirstSlackSignature(ctx context.Context, signature string, expires time.Time) (bool, error) {
	first := false
	err := s.tx(ctx, func(tx tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM slack_signatures WHERE expires_at < ?`, s.leaseNS()); err != nil {
			return err
		}
		var got string
		err := tx.QueryRowContext(ctx, `INSERT INTO slack_signatures (signature, expires_at) VALUES (?, ?)
			ON CONFLICT (signature) DO NOTHING RETURNING signature`, signature, expires.UnixNano()).Scan(&got)
		switch {
		case err == nil:
			first = true
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("record the Slack request's signature: %w", err)
	}
	return first, nil
}
