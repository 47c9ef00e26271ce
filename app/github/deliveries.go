package github

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// delivery is one webhook delivery as recorded in github_deliveries.
type delivery struct {
	ID, Event, Action, Repo string
	DedupeKey               string // "" when the event has no natural identity
}

// recordDelivery persists a delivery before it is acted on. It returns false when the
// delivery id was seen before (unless its work failed), or another delivery carried the same dedupe key (the
// duplicate is still recorded, with state duplicate, for the log).
func recordDelivery(ctx context.Context, db *sql.DB, d delivery) (fresh bool, err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("record delivery %s: %w", d.ID, err)
	}
	defer tx.Rollback()
	var prev string
	err = tx.QueryRowContext(ctx, `SELECT state FROM github_deliveries WHERE id = ?`, d.ID).Scan(&prev)
	switch {
	case err == nil && prev == "failed":
		// A redelivery (GitHub's "Redeliver" button) of a delivery whose work failed: try again.
		if _, err := tx.ExecContext(ctx, `UPDATE github_deliveries SET state = 'received', detail = '', finished_at = 0 WHERE id = ?`, d.ID); err != nil {
			return false, fmt.Errorf("record delivery %s: %w", d.ID, err)
		}
		return true, tx.Commit()
	case err == nil:
		return false, nil
	case !errors.Is(err, sql.ErrNoRows):
		return false, fmt.Errorf("record delivery %s: %w", d.ID, err)
	}
	var n int
	state, key := "received", sql.NullString{String: d.DedupeKey, Valid: d.DedupeKey != ""}
	if key.Valid {
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM github_deliveries WHERE dedupe_key = ?`, key).Scan(&n); err != nil {
			return false, fmt.Errorf("record delivery %s: %w", d.ID, err)
		}
		if n > 0 {
			state, key = "duplicate", sql.NullString{}
		}
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO github_deliveries (id, event, action, repo, dedupe_key, state, received_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		d.ID, d.Event, d.Action, d.Repo, key, state, time.Now().UnixNano())
	if err != nil {
		return false, fmt.Errorf("record delivery %s: %w", d.ID, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("record delivery %s: %w", d.ID, err)
	}
	return state == "received", nil
}

// finishDelivery records how handling a delivery ended.
func finishDelivery(ctx context.Context, db *sql.DB, id, state, detail string) error {
	_, err := db.ExecContext(ctx, `UPDATE github_deliveries SET state = ?, detail = ?, finished_at = ? WHERE id = ?`, state, detail, time.Now().UnixNano(), id)
	if err != nil {
		return fmt.Errorf("finish delivery %s: %w", id, err)
	}
	return nil
}

// deliveryRetention is how long deliveries are kept for de-duplication and the log
// (GitHub redelivers for up to three days).
const deliveryRetention = 30 * 24 * time.Hour

// pruneDeliveries forgets deliveries older than the retention.
func pruneDeliveries(ctx context.Context, db *sql.DB, now time.Time) error {
	_, err := db.ExecContext(ctx, `DELETE FROM github_deliveries WHERE received_at < ?`, now.Add(-deliveryRetention).UnixNano())
	if err != nil {
		return fmt.Errorf("prune github deliveries: %w", err)
	}
	return nil
}
