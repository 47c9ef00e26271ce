package release

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/immunity-app/immunity/deployers"
)

// testRepo is a real git repository in a temp dir, written to with go-git.
type testRepo struct {
	t    testing.TB
	dir  string
	repo *git.Repository
	when time.Time
}

func newRepo(t testing.TB) *testRepo {
	t.Helper()
	dir := t.TempDir()
	repo, err := git.PlainInitWithOptions(dir, &git.PlainInitOptions{
		InitOptions: git.InitOptions{DefaultBranch: plumbing.NewBranchReferenceName("main")},
	})
	if err != nil {
		t.Fatal(err)
	}
	return &testRepo{t: t, dir: dir, repo: repo, when: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

// write puts a file in the work tree (mode 0o755 makes it executable in git).
func (r *testRepo) write(name, content string, mode os.FileMode) {
	r.t.Helper()
	path := filepath.Join(r.dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		r.t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		r.t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		r.t.Fatal(err)
	}
}

// commit adds everything in the work tree and commits it; it returns the full SHA.
func (r *testRepo) commit(msg string) string {
	r.t.Helper()
	wt, err := r.repo.Worktree()
	if err != nil {
		r.t.Fatal(err)
	}
	if err := wt.AddWithOptions(&git.AddOptions{All: true}); err != nil {
		r.t.Fatal(err)
	}
	r.when = r.when.Add(time.Minute)
	sig := &object.Signature{Name: "Ada Lovelace", Email: "ada@example.com", When: r.when}
	h, err := wt.Commit(msg, &git.CommitOptions{Author: sig, Committer: sig, AllowEmptyCommits: true})
	if err != nil {
		r.t.Fatal(err)
	}
	return h.String()
}

// branch points a new branch at sha.
func (r *testRepo) branch(name, sha string) {
	r.t.Helper()
	ref := plumbing.NewHashReference(plumbing.NewBranchReferenceName(name), plumbing.NewHash(sha))
	if err := r.repo.Storer.SetReference(ref); err != nil {
		r.t.Fatal(err)
	}
}

// spec is a quick build of repo at sha that packs the given paths as they are.
func (r *testRepo) spec(sha string, artifacts ...string) Spec {
	return Spec{App: "demo", RepoPath: r.dir, SHA: sha, Command: []string{"true"}, Artifacts: artifacts, Dir: r.t.TempDir()}
}

func mustBuild(t *testing.T, s Spec) deployers.Release {
	t.Helper()
	rel, err := Build(context.Background(), s)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	return rel
}

// unpack extracts a release into a temp dir and returns it.
func unpack(t *testing.T, rel deployers.Release) string {
	t.Helper()
	f, err := os.Open(rel.Artifact)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dir := t.TempDir()
	if err := deployers.Unpack(f, dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(bytes.TrimSpace(b))
}
