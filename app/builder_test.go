package app

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/immunity-app/immunity/pipeline/config"
	"github.com/immunity-app/immunity/pipeline/release"
)

// TestAppOnlyOnGitHubIsBuiltFromAMirror: an app with repo.github and no repo.path is
// cloned into data_dir/repos on first use and fetched when a pushed commit is missing.
func TestAppOnlyOnGitHubIsBuiltFromAMirror(t *testing.T) {
	ctx := context.Background()
	origin := filepath.Join(t.TempDir(), "papi")
	r, err := git.PlainInitWithOptions(origin, &git.PlainInitOptions{InitOptions: git.InitOptions{DefaultBranch: plumbing.NewBranchReferenceName("main")}})
	if err != nil {
		t.Fatal(err)
	}
	commit := func(version string) string {
		os.WriteFile(filepath.Join(origin, "version.txt"), []byte(version), 0o644)
		wt, _ := r.Worktree()
		wt.Add("version.txt")
		h, err := wt.Commit("version "+version, &git.CommitOptions{Author: &object.Signature{Name: "Ada", Email: "ada@example.com", When: time.Now()}})
		if err != nil {
			t.Fatal(err)
		}
		return h.String()
	}
	first := commit("1")
	var asked []string
	b := &builder{dir: t.TempDir(), remote: func(_ context.Context, a *config.App) (release.Remote, error) {
		asked = append(asked, a.Repo.GitHub)
		return release.Remote{URL: origin}, nil
	}}
	a := &config.App{Name: "papi", Repo: config.Repo{GitHub: "acme/papi", Branch: "main"},
		Build: config.Build{Command: []string{"cp", "version.txt", "out.txt"}, Artifacts: []string{"out.txt"}}}

	c, err := b.Commit(ctx, a, first)
	if err != nil || c.SHA != first || c.Subject != "version 1" {
		t.Fatalf("first commit: %+v %v", c, err)
	}
	second := commit("2") // pushed after the mirror was made
	if c, err = b.Commit(ctx, a, second[:10]); err != nil || c.SHA != second {
		t.Fatalf("pushed commit: %+v %v", c, err)
	}
	if c, err = b.Commit(ctx, a, ""); err != nil || c.SHA != second {
		t.Fatalf("head: %+v %v", c, err)
	}
	rel, err := b.Build(ctx, a, first)
	if err != nil || rel.SHA != first || rel.Checksum == "" {
		t.Fatalf("build from the mirror: %+v %v", rel, err)
	}
	if len(asked) == 0 || asked[0] != "acme/papi" {
		t.Fatalf("remote asked for %v", asked)
	}
	if _, err := b.Commit(ctx, a, "0123456789abcdef"); err == nil {
		t.Fatal("an unknown commit was found")
	}
	// Without the GitHub App there is nowhere to fetch from.
	if _, err := (&builder{dir: t.TempDir()}).Commit(ctx, a, first); err == nil {
		t.Fatal("an app without repo.path built without the GitHub App")
	}
}
