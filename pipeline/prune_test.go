package pipeline

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/immunity-app/immunity/internal/pgtest"
	"github.com/immunity-app/immunity/store"
)

const oneRegionKeep2 = `
apps:
  - name: papi
    repo: {path: papi.git}
    build: {command: [make], artifacts: [bin]}
    run: {command: [bin/papi]}
    tests: {command: [bin/itest]}
    keep_releases: 2
    regions:
      - name: sandbox1
        hosts: [{name: host1, port: 41001}]
`

// Artifacts no host keeps any more (beyond keep_releases, live and previous included)
// are deleted once a stage ends; the ones kept stay.
func TestArtifactsBeyondWhatHostsKeepArePruned(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testArtifactsPruned(t, newHarness(t, oneRegionKeep2)) })
	t.Run("postgres, artifacts stored in the database", func(t *testing.T) {
		h := newHarnessOn(t, oneRegionKeep2, pgtest.Database(t))
		h.build.stored = h.st
		testArtifactsPruned(t, h)
	})
}

func testArtifactsPruned(t *testing.T, h *harness) {
	var shas []string
	for _, subject := range []string{"one", "two", "three", "four", "five", "six"} {
		run := h.push(subject)
		h.waitState(run.ID, store.RunSucceeded)
		shas = append(shas, run.SHA)
	}
	ctx := context.Background()
	// Pruning follows the stage's end, a moment after the run's.
	h.waitRun(1, "release 4 pruned", func(store.Run) bool {
		rel, _ := h.st.Release(ctx, "papi", shas[3])
		return rel.State == store.ReleasePruned
	})
	for i, sha := range shas {
		rel, err := h.st.Release(ctx, "papi", sha)
		if err != nil {
			t.Fatal(err)
		}
		_, statErr := os.Stat(rel.Artifact)
		kept := i >= 4 // the last two live in the region, and the last two built
		if kept && (rel.State != store.ReleaseReady || statErr != nil) {
			t.Errorf("release %d (%s) is %s, artifact %v; want it kept", i+1, short(sha), rel.State, statErr)
		}
		if !kept && (rel.State != store.ReleasePruned || !os.IsNotExist(statErr)) {
			t.Errorf("release %d (%s) is %s, artifact %v; want it pruned", i+1, short(sha), rel.State, statErr)
		}
		if h.build.stored != nil {
			_, err := h.st.ArtifactChecksum(ctx, "papi", sha)
			if kept && err != nil || !kept && !errors.Is(err, store.ErrNotFound) {
				t.Errorf("release %d (%s) kept %v: its stored artifact: %v", i+1, short(sha), kept, err)
			}
		}
	}
	// A rollback to a pruned release is refused; to the previous one it works.
	if _, err := h.eng.Rollback(ctx, ada, "papi", "sandbox1", shas[0]); err == nil {
		t.Error("rolled back to a pruned release")
	}
	if _, err := h.eng.Rollback(ctx, ada, "papi", "sandbox1", ""); err != nil {
		t.Errorf("rollback to the previous release: %v", err)
	}
}

func TestTestbedsOfReleasesNoHostKeepsArePruned(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"aaa", "bbb", "ccc.tmp"} {
		os.MkdirAll(filepath.Join(dir, "testbeds", "papi", name), 0o755)
	}
	if err := (CommandTester{Dir: dir}).PruneTestbeds("papi", map[string]bool{"aaa": true}); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "testbeds", "papi"))
	if len(entries) != 1 || entries[0].Name() != "aaa" {
		t.Fatalf("test beds left: %v; want only aaa", entries)
	}
}
