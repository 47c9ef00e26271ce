package store

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestArtifactsStoredInChunksAndVerifiedOnRead(t *testing.T) {
	engines(t, func(t *testing.T, db string) {
		ctx := t.Context()
		s := open(t, db)
		data := make([]byte, 2*ArtifactChunk+ArtifactChunk/2) // three chunks, the last short
		rand.Read(data)
		path := filepath.Join(t.TempDir(), "papi.tar.gz")
		os.WriteFile(path, data, 0o644)
		want := sha256.Sum256(data)

		if _, err := s.PutArtifact(ctx, "papi", "1a2b3c4d5e", filepath.Join(t.TempDir(), "missing")); err == nil {
			t.Fatal("a missing file was stored")
		}
		if _, err := s.FetchArtifact(ctx, "papi", "1a2b3c4d5e", &bytes.Buffer{}); !errors.Is(err, ErrNotFound) {
			t.Fatalf("nothing stored: %v", err)
		}
		sum, err := s.PutArtifact(ctx, "papi", "1a2b3c4d5e", path)
		if err != nil || sum != hex.EncodeToString(want[:]) {
			t.Fatalf("put: %s %v", sum, err)
		}
		other := filepath.Join(t.TempDir(), "other.tar.gz")
		os.WriteFile(other, []byte("another build"), 0o644)
		if again, err := s.PutArtifact(ctx, "papi", "1a2b3c4d5e", other); err != nil || again != sum {
			t.Fatalf("the artifact stored first is kept: %s %v", again, err)
		}
		var got bytes.Buffer
		if sum2, err := s.FetchArtifact(ctx, "papi", "1a2b3c4d5e", &got); err != nil || sum2 != sum || !bytes.Equal(got.Bytes(), data) {
			t.Fatalf("fetch: %d bytes, %s %v", got.Len(), sum2, err)
		}
		var chunks int
		s.db.QueryRowContext(ctx, `SELECT count(*) FROM artifact_chunks WHERE app = 'papi'`).Scan(&chunks)
		if chunks != 3 {
			t.Fatalf("%d chunks, want 3", chunks)
		}

		// A flipped byte in the middle chunk, then a chunk gone: each is said, not served.
		bad := bytes.Clone(data[ArtifactChunk : 2*ArtifactChunk])
		bad[100] ^= 1
		if _, err := s.db.ExecContext(ctx, `UPDATE artifact_chunks SET data = ? WHERE app = 'papi' AND n = 1`, bad); err != nil {
			t.Fatal(err)
		}
		if _, err := s.FetchArtifact(ctx, "papi", "1a2b3c4d5e", &bytes.Buffer{}); !errors.Is(err, ErrArtifactCorrupt) {
			t.Fatalf("a corrupt chunk: %v", err)
		}
		if _, err := s.db.ExecContext(ctx, `DELETE FROM artifact_chunks WHERE app = 'papi' AND n = 1`); err != nil {
			t.Fatal(err)
		}
		if _, err := s.FetchArtifact(ctx, "papi", "1a2b3c4d5e", &bytes.Buffer{}); !errors.Is(err, ErrArtifactCorrupt) {
			t.Fatalf("a missing chunk: %v", err)
		}
		if err := s.DeleteArtifact(ctx, "papi", "1a2b3c4d5e"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.FetchArtifact(ctx, "papi", "1a2b3c4d5e", &bytes.Buffer{}); !errors.Is(err, ErrNotFound) {
			t.Fatalf("after delete: %v", err)
		}
		s.db.QueryRowContext(ctx, `SELECT count(*) FROM artifact_chunks`).Scan(&chunks)
		if chunks != 0 {
			t.Fatalf("%d chunks left after delete", chunks)
		}
	})
}
