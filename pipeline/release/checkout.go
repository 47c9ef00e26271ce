package release

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// materialise writes exactly the tree of commit c into dir (which must not exist yet):
// regular files with their modes, then symlinks, so no file is ever written through a
// link. Submodules are left out. Paths that would leave dir are refused.
func materialise(c *object.Commit, dir string) error {
	tree, err := c.Tree()
	if err != nil {
		return fmt.Errorf("read tree of %s: %w", c.Hash, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var links []*object.File
	err = tree.Files().ForEach(func(f *object.File) error {
		if !safePath(f.Name) {
			return fmt.Errorf("tree entry %q: expected a path inside the checkout", f.Name)
		}
		if f.Mode == filemode.Symlink {
			links = append(links, f)
			return nil
		}
		return writeFile(f, filepath.Join(dir, filepath.FromSlash(f.Name)))
	})
	if err != nil {
		return err
	}
	for _, f := range links {
		if err := writeLink(f, filepath.Join(dir, filepath.FromSlash(f.Name))); err != nil {
			return err
		}
	}
	return nil
}

// safePath refuses absolute paths, "..", and anything inside a .git folder.
func safePath(name string) bool {
	if !filepath.IsLocal(filepath.FromSlash(name)) {
		return false
	}
	for _, part := range strings.Split(name, "/") {
		if strings.EqualFold(part, ".git") {
			return false
		}
	}
	return true
}

func writeFile(f *object.File, path string) error {
	perm := os.FileMode(0o644)
	if f.Mode == filemode.Executable {
		perm = 0o755
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	r, err := f.Reader()
	if err != nil {
		return fmt.Errorf("read %s: %w", f.Name, err)
	}
	defer r.Close()
	out, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, perm)
	if err != nil {
		return fmt.Errorf("write %s: %w", f.Name, err)
	}
	_, err = io.Copy(out, r)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", f.Name, err)
	}
	return nil
}

func writeLink(f *object.File, path string) error {
	target, err := f.Contents()
	if err != nil {
		return fmt.Errorf("read symlink %s: %w", f.Name, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if err := os.Symlink(target, path); err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("symlink %s: a file of that name exists", f.Name)
		}
		return fmt.Errorf("symlink %s: %w", f.Name, err)
	}
	return nil
}
