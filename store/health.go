package store

import (
	"context"
	"fmt"
)

// Writable checks that the database takes a write now: it rewrites the one row of the
// health table. It fails while the file cannot be written (read-only, disk full, another
// writer holding the lock past ctx's deadline).
func (s *Store) Writable(ctx context.Context) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO health (id, checked_at) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at`, s.nowNS())
	if err != nil {
		return fmt.Errorf("database not writable: %w", err)
	}
	return nil
}
