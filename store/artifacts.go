package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
)

// Artifacts in the database: a release's packed artifact stored in chunks, so every
// replica sharing a PostgreSQL database can deploy a release another replica built. Each
// chunk carries its sha256 and the artifact its whole sha256; FetchArtifact checks both
// and fails with ErrArtifactCorrupt, writing nothing it did not verify, when one is off.

// ArtifactChunk is the largest chunk an artifact is stored in.
const ArtifactChunk = 1 << 20

// ErrArtifactCorrupt is FetchArtifact's answer when a stored artifact does not match its
// checksums (a chunk altered or missing): it must be deleted and built again.
var ErrArtifactCorrupt = errors.New("stored artifact is corrupt")

// PutArtifact stores the file at path as the artifact of app@sha, in one transaction,
// and returns its sha256. An artifact already stored is kept (builds of one commit give
// the same bytes; the first stored wins): its checksum is returned.
func (s *Store) PutArtifact(ctx context.Context, app, sha, path string) (checksum string, err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("store artifact %s@%s: %w", app, short(sha), err)
	}
	defer f.Close()
	err = s.tx(ctx, func(tx tx) error {
		err := tx.QueryRowContext(ctx, `SELECT checksum FROM artifacts WHERE app = ? AND sha = ?`, app, sha).Scan(&checksum)
		if err == nil {
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		whole := sha256.New()
		buf := make([]byte, ArtifactChunk)
		var size int64
		n := 0
		for ; ; n++ {
			k, err := io.ReadFull(f, buf)
			if k > 0 {
				sum := sha256.Sum256(buf[:k])
				whole.Write(buf[:k])
				size += int64(k)
				if _, err := tx.ExecContext(ctx, `INSERT INTO artifact_chunks (app, sha, n, sum, data) VALUES (?, ?, ?, ?, ?)`,
					app, sha, n, hex.EncodeToString(sum[:]), buf[:k]); err != nil {
					return err
				}
			}
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				if k > 0 {
					n++
				}
				break
			}
			if err != nil {
				return err
			}
		}
		checksum = hex.EncodeToString(whole.Sum(nil))
		_, err = tx.ExecContext(ctx, `INSERT INTO artifacts (app, sha, checksum, size, chunks, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
			app, sha, checksum, size, n, s.nowNS())
		return err
	})
	if err != nil {
		return "", fmt.Errorf("store artifact %s@%s: %w", app, short(sha), err)
	}
	return checksum, nil
}

// FetchArtifact writes the stored artifact of app@sha to w, chunk by chunk, each checked
// against its sha256 before it is written, and the whole against the artifact's; it
// returns the checksum. ErrNotFound: none is stored; ErrArtifactCorrupt: a check failed
// (what was written to w is then incomplete and must be thrown away).
func (s *Store) FetchArtifact(ctx context.Context, app, sha string, w io.Writer) (checksum string, err error) {
	var size, chunks int64
	err = s.db.QueryRowContext(ctx, `SELECT checksum, size, chunks FROM artifacts WHERE app = ? AND sha = ?`, app, sha).Scan(&checksum, &size, &chunks)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("artifact %s@%s: %w", app, short(sha), ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("artifact %s@%s: %w", app, short(sha), err)
	}
	corrupt := func(format string, args ...any) error {
		return fmt.Errorf("artifact %s@%s: %w: %s", app, short(sha), ErrArtifactCorrupt, fmt.Sprintf(format, args...))
	}
	rows, err := s.db.QueryContext(ctx, `SELECT n, sum, data FROM artifact_chunks WHERE app = ? AND sha = ? ORDER BY n`, app, sha)
	if err != nil {
		return "", fmt.Errorf("artifact %s@%s: %w", app, short(sha), err)
	}
	defer rows.Close()
	whole := sha256.New()
	var next, got int64
	for rows.Next() {
		var n int64
		var sum string
		var data []byte
		if err := rows.Scan(&n, &sum, &data); err != nil {
			return "", fmt.Errorf("artifact %s@%s: %w", app, short(sha), err)
		}
		if n != next {
			return "", corrupt("chunk %d missing", next)
		}
		if h := sha256.Sum256(data); hex.EncodeToString(h[:]) != sum {
			return "", corrupt("chunk %d does not match its sha256", n)
		}
		whole.Write(data)
		if _, err := w.Write(data); err != nil {
			return "", fmt.Errorf("artifact %s@%s: %w", app, short(sha), err)
		}
		next++
		got += int64(len(data))
	}
	if err := rows.Err(); err != nil {
		return "", fmt.Errorf("artifact %s@%s: %w", app, short(sha), err)
	}
	if next != chunks || got != size {
		return "", corrupt("%d chunks of %d bytes, want %d of %d", next, got, chunks, size)
	}
	if hex.EncodeToString(whole.Sum(nil)) != checksum {
		return "", corrupt("the whole does not match its sha256")
	}
	return checksum, nil
}

// DeleteArtifact removes the stored artifact of app@sha, if any (pruned, or corrupt).
func (s *Store) DeleteArtifact(ctx context.Context, app, sha string) error {
	err := s.tx(ctx, func(tx tx) error { return deleteArtifact(ctx, tx, app, sha) })
	if err != nil {
		return fmt.Errorf("delete artifact %s@%s: %w", app, short(sha), err)
	}
	return nil
}

func deleteArtifact(ctx context.Context, tx tx, app, sha string) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM artifacts WHERE app = ? AND sha = ?`, app, sha); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, `DELETE FROM artifact_chunks WHERE app = ? AND sha = ?`, app, sha)
	return err
}

// ArtifactChecksum is the sha256 of the stored artifact of app@sha; ErrNotFound when
// none is stored.
func (s *Store) ArtifactChecksum(ctx context.Context, app, sha string) (string, error) {
	var sum string
	err := s.db.QueryRowContext(ctx, `SELECT checksum FROM artifacts WHERE app = ? AND sha = ?`, app, sha).Scan(&sum)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("artifact %s@%s: %w", app, short(sha), ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("artifact %s@%s: %w", app, short(sha), err)
	}
	return sum, nil
}
