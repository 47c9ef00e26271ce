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
