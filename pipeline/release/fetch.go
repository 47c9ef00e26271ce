package release

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
)

// Remote is where a mirrored repository comes from.
type Remote struct {
	URL string
	// Token, when set, is sent as the password of user x-access-token (a GitHub App
	// installation token).
	Token string
}

// Sync keeps a bare mirror of a remote repository at path: cloned on first use, its
// branches fetched afterwards. Builds then read commits from the mirror.
func Sync(ctx context.Context, path string, r Remote) error {
	var auth transport.AuthMethod
	if r.Token != "" {
		auth = &githttp.BasicAuth{Username: "x-access-token", Password: r.Token}
	}
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		tmp := path + ".tmp"
		os.RemoveAll(tmp)
		if _, err := git.PlainCloneContext(ctx, tmp, true, &git.CloneOptions{URL: r.URL, Auth: auth}); err != nil {
			os.RemoveAll(tmp)
			return fmt.Errorf("clone %s: %w", r.URL, err)
		}
		return os.Rename(tmp, path)
	}
	repo, err := git.PlainOpen(path)
	if err != nil {
		return fmt.Errorf("open mirror %s: %w", path, err)
	}
	err = repo.FetchContext(ctx, &git.FetchOptions{RemoteName: "origin", Auth: auth, Force: true,
		RefSpecs: []config.RefSpec{"+refs/heads/*:refs/heads/*"}})
	if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		return fmt.Errorf("fetch %s: %w", r.URL, err)
	}
	return nil
}
