// Package release builds immutable releases: one exact commit, checked out from its git
// tree (never "whatever HEAD is"), built once by the app's build command, its artifacts
// packed into a deterministic tar.gz and checksummed.
//
// Layout under Spec.Dir:
//
//	checkouts/<app>/<sha>.tmp   the tree being written
//	checkouts/<app>/<sha>       the complete tree, where the build command runs; removed after
//	checkouts/<app>/<sha>.lock  held while a build of that commit runs
//	checkouts/<app>/<sha>.old-N a tree left by a crash or a finished build, being removed
//	artifacts/<app>/<sha>.tar.gz the release; its presence means the build finished
//	                            (under Spec.ArtifactDir instead, when set)
//
// The artifact is written to a temporary file and renamed into place, so it exists only
// complete. A second Build of the same commit (after a restart, say) returns the existing
// artifact without building again. The build command is an argv list run without a
// shell, with a filtered environment (see keptEnv) plus Spec.Env; on Linux it is killed
// when the server dies. A tree left by a server killed mid-build is moved aside with one
// rename (a process of that build still writing into it cannot disturb that) and removed
// as soon as nothing writes into it any more.
package release

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/immunity-app/immunity/deployers"
)

// DefaultTimeout bounds a build whose Spec has no Timeout.
const DefaultTimeout = 5 * time.Minute

// Spec says what to build and how.
type Spec struct {
	App       string
	RepoPath  string // local git repository
	SHA       string // full or unambiguous short hex SHA
	Command   []string
	Artifacts []string // paths relative to the checkout
	Env       map[string]string
	Timeout   time.Duration // default DefaultTimeout
	Dir       string        // root for checkouts and artifacts
	// ArtifactDir holds the artifacts (<app>/<sha>.tar.gz) instead of Dir/artifacts: a
	// folder shared by the servers of one database.
	ArtifactDir string
	Log         io.Writer // build output; nil discards it
}

// Build returns the release of s.SHA, building it unless its artifact already exists.
func Build(ctx context.Context, s Spec) (deployers.Release, error) {
	c, err := openCommit(s)
	if err != nil {
		return deployers.Release{}, fmt.Errorf("build %s@%s: %w", s.App, s.SHA, err)
	}
	sha := c.Hash.String()
	rel, err := build(ctx, s, c)
	if err != nil {
		return deployers.Release{}, fmt.Errorf("build %s@%s: %w", s.App, sha[:7], err)
	}
	return rel, nil
}

func openCommit(s Spec) (*object.Commit, error) {
	if !filepath.IsLocal(s.App) || strings.ContainsAny(s.App, `/\`) {
		return nil, fmt.Errorf("app name %q: expected a plain name", s.App)
	}
	if s.Dir == "" {
		return nil, fmt.Errorf("no Dir to build in")
	}
	repo, err := git.PlainOpen(s.RepoPath)
	if err != nil {
		return nil, fmt.Errorf("open repository %s: %w", s.RepoPath, err)
	}
	return resolve(repo, s.SHA)
}

func build(ctx context.Context, s Spec, c *object.Commit) (deployers.Release, error) {
	dir, err := filepath.Abs(s.Dir)
	if err != nil {
		return deployers.Release{}, err
	}
	sha := c.Hash.String()
	artDir := filepath.Join(dir, "artifacts", s.App)
	if s.ArtifactDir != "" {
		if artDir, err = filepath.Abs(filepath.Join(s.ArtifactDir, s.App)); err != nil {
			return deployers.Release{}, err
		}
	}
	coDir := filepath.Join(dir, "checkouts", s.App)
	for _, d := range []string{artDir, coDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return deployers.Release{}, err
		}
	}
	unlock, err := lockFile(ctx, filepath.Join(coDir, sha+".lock"))
	if err != nil {
		return deployers.Release{}, err
	}
	defer unlock()
	rel := deployers.Release{App: s.App, SHA: sha, Artifact: filepath.Join(artDir, sha+".tar.gz")}
	if _, err := os.Stat(rel.Artifact); err != nil {
		if err := buildArtifact(ctx, s, c, filepath.Join(coDir, sha), rel.Artifact); err != nil {
			return deployers.Release{}, err
		}
	}
	if rel.Checksum, err = deployers.FileChecksum(rel.Artifact); err != nil {
		return deployers.Release{}, fmt.Errorf("checksum: %w", err)
	}
	return rel, nil
}

// buildArtifact checks c out into checkout, runs the build there and packs the artifact.
// The checkout is removed afterwards, whatever happened.
func buildArtifact(ctx context.Context, s Spec, c *object.Commit, checkout, artifact string) error {
	tmp := checkout + ".tmp"
	for _, d := range []string{tmp, checkout} { // left over by a crash
		if err := discard(d); err != nil {
			return fmt.Errorf("check out: %w", err)
		}
	}
	defer discard(tmp)
	defer discard(checkout)
	if err := materialise(c, tmp); err != nil {
		return fmt.Errorf("check out: %w", err)
	}
	if err := os.Rename(tmp, checkout); err != nil {
		return fmt.Errorf("check out: %w", err)
	}
	log := s.Log
	if log == nil {
		log = io.Discard
	}
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	fmt.Fprintf(log, "build %s@%s: %s\n", s.App, c.Hash.String()[:7], strings.Join(s.Command, " "))
	if err := runCommand(ctx, checkout, s.Command, buildEnv(os.Environ(), s.Env), timeout, log); err != nil {
		return err
	}
	return pack(checkout, s.Artifacts, artifact)
}

// discard moves the tree at path (if any) aside to path.old-N and removes it, and every
// tree discarded earlier beside it. Moving is one rename, which a process still writing
// into the tree (a build of a server that was killed) cannot make fail, unlike a removal;
// removals are best-effort: what is still being written is removed by a later build.
func discard(path string) error {
	aside := fmt.Sprintf("%s.old-%d", path, time.Now().UnixNano())
	if err := os.Rename(path, aside); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("move %s aside: %w", path, err)
	}
	dir := filepath.Dir(path)
	entries, _ := os.ReadDir(dir)
	for _, ent := range entries {
		if strings.Contains(ent.Name(), ".old-") {
			os.RemoveAll(filepath.Join(dir, ent.Name()))
		}
	}
	return nil
}

// pack writes the artifact through a temporary file renamed into place.
func pack(checkout string, paths []string, artifact string) error {
	f, err := os.CreateTemp(filepath.Dir(artifact), filepath.Base(artifact)+".*.tmp")
	if err != nil {
		return fmt.Errorf("pack artifacts: %w", err)
	}
	defer os.Remove(f.Name())
	err = deployers.Pack(checkout, paths, f)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), artifact)
	}
	if err != nil {
		return fmt.Errorf("pack artifacts: %w", err)
	}
	return nil
}
