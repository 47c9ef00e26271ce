package app

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/immunity-app/immunity/deployers"
	"github.com/immunity-app/immunity/internal/pgtest"
	"github.com/immunity-app/immunity/pipeline/config"
	"github.com/immunity-app/immunity/store"
)

// countingApp is a repository of one commit and an app whose build says in count each
// time it runs (and takes a moment, so that builds started together overlap).
func countingApp(t *testing.T) (a *config.App, sha, count string) {
	t.Helper()
	dir := t.TempDir()
	repo := filepath.Join(dir, "papi")
	r, err := git.PlainInitWithOptions(repo, &git.PlainInitOptions{InitOptions: git.InitOptions{DefaultBranch: plumbing.NewBranchReferenceName("main")}})
	if err != nil {
		t.Fatal(err)
	}
	noise := make([]byte, 2*store.ArtifactChunk+store.ArtifactChunk/2) // does not compress: three chunks
	rand.Read(noise)
	os.WriteFile(filepath.Join(repo, "version.txt"), noise, 0o644)
	wt, _ := r.Worktree()
	wt.Add("version.txt")
	h, err := wt.Commit("version 1", &git.CommitOptions{Author: &object.Signature{Name: "Ada", Email: "ada@example.com", When: time.Now()}})
	if err != nil {
		t.Fatal(err)
	}
	count = filepath.Join(dir, "builds")
	return &config.App{Name: "papi", Repo: config.Repo{Path: repo, Branch: "main"}, Build: config.Build{
		Command:   []string{"sh", "-c", `echo built >> "$COUNT" && cp version.txt out.txt && sleep 0.5`},
		Env:       map[string]string{"COUNT": count},
		Artifacts: []string{"out.txt"}}}, h.String(), count
}

func builds(t *testing.T, count string) int {
	t.Helper()
	b, err := os.ReadFile(count)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return strings.Count(string(b), "built")
}

// replicaBuilders are n builders of replicas on one database, each with its data_dir.
func replicaBuilders(t *testing.T, database, shared string, n int) []*builder {
	t.Helper()
	var out []*builder
	for i := range n {
		st, err := store.Open(context.Background(), database)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		st.SetReplica(string(rune('a' + i)))
		out = append(out, &builder{dir: t.TempDir(), artifacts: shared, st: st, logs: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	}
	return out
}

// buildAll builds sha on every builder at once.
func buildAll(t *testing.T, bs []*builder, a *config.App, sha string) []deployers.Release {
	t.Helper()
	rels := make([]deployers.Release, len(bs))
	errs := make([]error, len(bs))
	var wg sync.WaitGroup
	for i, b := range bs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rels[i], errs[i] = b.Build(t.Context(), a, sha)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
	}
	return rels
}

// Three replicas on one PostgreSQL database build one commit at once: it is built once,
// stored in the database, and every replica gets a verified copy in its own data_dir. A
// stored chunk altered afterwards is caught by its sha256: said, and built again.
func TestBuiltOnceAcrossReplicasWithArtifactsInTheDatabase(t *testing.T) {
	t.Parallel()
	_, database := pgtest.Own(t)
	a, sha, count := countingApp(t)
	bs := replicaBuilders(t, database, "", 3)
	rels := buildAll(t, bs, a, sha)
	if n := builds(t, count); n != 1 {
		t.Fatalf("built %d times across 3 replicas, want once", n)
	}
	for i, rel := range rels {
		if rel.SHA != sha || rel.Checksum != rels[0].Checksum || !strings.HasPrefix(rel.Artifact, bs[i].dir) {
			t.Fatalf("replica %d: %+v; want its own copy of %s", i, rel, rels[0].Checksum)
		}
		if sum, err := deployers.FileChecksum(rel.Artifact); err != nil || sum != rel.Checksum {
			t.Fatalf("replica %d's copy: %s %v", i, sum, err)
		}
	}

	// A chunk altered in the database: a replica without a copy finds it out, and it is
	// built again (once), stored again and served verified.
	raw, err := sql.Open("pgx", database)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Exec(`UPDATE artifact_chunks SET data = overlay(data placing 'X'::bytea from 10) WHERE app = 'papi' AND n = 1`); err != nil {
		t.Fatal(err)
	}
	os.Remove(rels[2].Artifact)
	rel, err := bs[2].Build(t.Context(), a, sha)
	if err != nil {
		t.Fatal(err)
	}
	if n := builds(t, count); n != 2 {
		t.Fatalf("built %d times, want a second build after the corrupt chunk", n)
	}
	if sum, err := deployers.FileChecksum(rel.Artifact); err != nil || sum != rel.Checksum {
		t.Fatalf("the rebuilt copy: %s %v", sum, err)
	}
	var fetched bytes.Buffer
	if sum, err := bs[0].st.FetchArtifact(t.Context(), "papi", sha, &fetched); err != nil || sum != rel.Checksum {
		t.Fatalf("the artifact stored again: %s %v", sum, err)
	}
	if _, err := bs[1].Build(t.Context(), a, sha[:10]); err != nil || builds(t, count) != 2 {
		t.Fatalf("a short sha built again: %v, %d builds", err, builds(t, count))
	}
}

// With a shared artifacts_dir the replicas build once into it and all use that file.
func TestBuiltOnceAcrossReplicasIntoASharedFolder(t *testing.T) {
	t.Parallel()
	a, sha, count := countingApp(t)
	shared := t.TempDir()
	_, database := pgtest.Own(t)
	bs := replicaBuilders(t, database, shared, 2)
	rels := buildAll(t, bs, a, sha)
	want := filepath.Join(shared, "papi", sha+".tar.gz")
	if n := builds(t, count); n != 1 || rels[0] != rels[1] || rels[0].Artifact != want {
		t.Fatalf("built %d times; releases %+v, want both %s", n, rels, want)
	}
	var stored int
	if _, err := bs[0].st.ArtifactChecksum(t.Context(), "papi", sha); err == nil {
		stored++
	}
	if stored != 0 {
		t.Fatal("an artifact in the shared folder was also stored in the database")
	}
}
