package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// SlackThread is where a run's Slack thread lives: its channel and root message's ts.
type SlackThread struct {
	RunID   int64
	Channel string
	TS      string
}

// SlackThread returns a run's thread; found is false when none was posted.
func (s *Store) SlackThread(ctx context.Context, runID int64) (th SlackThread, found bool, err error) {
	th = SlackThread{RunID: runID}
	err = s.db.QueryRowContext(ctx, `SELECT channel, ts FROM slack_threads WHERE run_id = ?`, runID).Scan(&th.Channel, &th.TS)
	if errors.Is(err, sql.ErrNoRows) {
		return SlackThread{}, false, nil
	}
	if err != nil {
		return SlackThread{}, false, fmt.Errorf("slack thread of run %d: %w", runID, err)
	}
	return th, true, nil
}

// SaveSlackThread records a run's thread; a thread already recorded is kept.
func (s *Store) SaveSlackThread(ctx context.Context, th SlackThread) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO slack_threads (run_id, channel, ts, created_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (run_id) DO NOTHING`, th.RunID, th.Channel, th.TS, s.nowNS())
	if err != nil {
		return fmt.Errorf("save slack thread of run %d: %w", th.RunID, err)
	}
	return nil
}

// ClaimSlackPost records that a run's post (by key: stage/prod3/failed, run/succeeded) is
// being made; false when it was claimed before, by this process or one before a restart.
func (s *Store) ClaimSlackPost(ctx context.Context, runID int64, key string) (bool, error) {
	res, err := s.db.ExecContext(ctx, `INSERT INTO slack_posts (run_id, key, created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`, runID, key, s.nowNS())
	if err != nil {
		return false, fmt.Errorf("claim slack post %s of run %d: %w", key, runID, err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// SetSlackPostTS records the ts Slack gave a claimed post.
func (s *Store) SetSlackPostTS(ctx context.Context, runID int64, key, ts string) error {
	if _, err := s.db.ExecContext(ctx, `UPDATE slack_posts SET ts = ? WHERE run_id = ? AND key = ?`, ts, runID, key); err != nil {
		return fmt.Errorf("slack post %s of run %d: %w", key, runID, err)
	}
	return nil
}
