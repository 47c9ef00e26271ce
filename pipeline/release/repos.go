package release

import (
	"errors"
	"fmt"
	"sync"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
)

// Repos keeps go-git repository handles open, one per path, so looking a pushed commit
// up does not open (and index) the repository again for every push. A handle is used by
// one caller at a time. A commit the handle does not find is looked for once more in a
// freshly opened handle, which then replaces it: a fetch or push by another process may
// have added a pack the old handle does not know. The zero value is ready to use; a nil
// *Repos keeps nothing open.
type Repos struct {
	mu   sync.Mutex
	open map[string]*repoHandle
}

type repoHandle struct {
	mu   sync.Mutex
	repo *git.Repository
}

func (r *Repos) handle(path string) (*repoHandle, error) {
	if r == nil {
		repo, err := git.PlainOpen(path)
		if err != nil {
			return nil, fmt.Errorf("open repository %s: %w", path, err)
		}
		return &repoHandle{repo: repo}, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if h, ok := r.open[path]; ok {
		return h, nil
	}
	repo, err := git.PlainOpen(path)
	if err != nil {
		return nil, fmt.Errorf("open repository %s: %w", path, err)
	}
	if r.open == nil {
		r.open = map[string]*repoHandle{}
	}
	h := &repoHandle{repo: repo}
	r.open[path] = h
	return h, nil
}

// with runs fn on path's handle, and again on a reopened one when fn does not find
// what it looks for.
func (r *Repos) with(path string, fn func(*git.Repository) (Commit, error)) (Commit, error) {
	h, err := r.handle(path)
	if err != nil {
		return Commit{}, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	c, err := fn(h.repo)
	if err == nil || !(errors.Is(err, ErrUnknownCommit) || errors.Is(err, plumbing.ErrReferenceNotFound) || errors.Is(err, plumbing.ErrObjectNotFound)) {
		return c, err
	}
	fresh, oerr := git.PlainOpen(path)
	if oerr != nil {
		return Commit{}, fmt.Errorf("open repository %s: %w", path, oerr)
	}
	h.repo = fresh
	return fn(fresh)
}

// Head returns the commit at the tip of a local branch of the repository at path.
func (r *Repos) Head(path, branch string) (Commit, error) {
	return r.with(path, func(repo *git.Repository) (Commit, error) { return head(repo, path, branch) })
}

// Lookup returns the commit a full or unambiguous short hex SHA names.
func (r *Repos) Lookup(path, sha string) (Commit, error) {
	return r.with(path, func(repo *git.Repository) (Commit, error) {
		c, err := resolve(repo, sha)
		if err != nil {
			return Commit{}, err
		}
		return commitOf(c), nil
	})
}
