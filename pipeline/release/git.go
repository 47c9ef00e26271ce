package release

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// Commit is what a run shows about the commit it ships.
type Commit struct {
	SHA     string // full hex SHA
	Subject string // first line of the message
	Author  string
	Email   string
	When    time.Time // author time
	// Committed is the committer time: when the commit was made as it is (a rebase or
	// an amend moves it, not When).
	Committed time.Time
}

// ErrUnknownCommit is returned when a SHA names no commit of the repository, or more than one.
var ErrUnknownCommit = errors.New("unknown commit")

// Head returns the commit at the tip of a local branch of the repository at repoPath.
func Head(repoPath, branch string) (Commit, error) {
	repo, err := git.PlainOpen(repoPath)
	if err != nil {
		return Commit{}, fmt.Errorf("open repository %s: %w", repoPath, err)
	}
	return head(repo, repoPath, branch)
}

func head(repo *git.Repository, repoPath, branch string) (Commit, error) {
	ref, err := repo.Reference(plumbing.NewBranchReferenceName(branch), true)
	if err != nil {
		return Commit{}, fmt.Errorf("branch %q of %s: %w", branch, repoPath, err)
	}
	c, err := repo.CommitObject(ref.Hash())
	if err != nil {
		return Commit{}, fmt.Errorf("branch %q of %s: %w", branch, repoPath, err)
	}
	return commitOf(c), nil
}

// Lookup returns the commit a full or unambiguous short hex SHA names.
func Lookup(repoPath, sha string) (Commit, error) {
	var r Repos
	return r.Lookup(repoPath, sha)
}

// resolve finds the commit named by a hex SHA: the full 40 digits, or a prefix of at
// least 4 that names exactly one commit. Names other than hex (branches, HEAD~1) are refused.
func resolve(repo *git.Repository, sha string) (*object.Commit, error) {
	sha = strings.ToLower(sha)
	if len(sha) < 4 || len(sha) > 40 || strings.Trim(sha, "0123456789abcdef") != "" {
		return nil, fmt.Errorf("commit %q: expected a hex SHA of 4 to 40 digits: %w", sha, ErrUnknownCommit)
	}
	if len(sha) == 40 {
		c, err := repo.CommitObject(plumbing.NewHash(sha))
		if err != nil {
			return nil, fmt.Errorf("commit %s: %w (%v)", sha, ErrUnknownCommit, err)
		}
		return c, nil
	}
	return resolvePrefix(repo, sha)
}

func resolvePrefix(repo *git.Repository, prefix string) (*object.Commit, error) {
	iter, err := repo.CommitObjects()
	if err != nil {
		return nil, fmt.Errorf("commit %s: list commits: %w", prefix, err)
	}
	defer iter.Close()
	var found []*object.Commit
	err = iter.ForEach(func(c *object.Commit) error {
		if strings.HasPrefix(c.Hash.String(), prefix) {
			found = append(found, c)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("commit %s: list commits: %w", prefix, err)
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("commit %s: %w", prefix, ErrUnknownCommit)
	case 1:
		return found[0], nil
	}
	return nil, fmt.Errorf("commit %s is ambiguous (%d commits start with it): %w", prefix, len(found), ErrUnknownCommit)
}

func commitOf(c *object.Commit) Commit {
	subject, _, _ := strings.Cut(c.Message, "\n")
	return Commit{
		SHA:       c.Hash.String(),
		Subject:   strings.TrimSpace(subject),
		Author:    c.Author.Name,
		Email:     c.Author.Email,
		When:      c.Author.When,
		Committed: c.Committer.When,
	}
}
