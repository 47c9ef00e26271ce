package local

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Names inside a host folder.
const (
	releasesDir = "releases"
	currentLink = "current"
	prevLink    = "previous"
	markerFile  = ".immunity-release"
	logFile     = "app.log"
	pidFile     = "app.pid"
	tmpInfix    = ".tmp-"
	// trashInfix names a release folder set aside to be removed: .<sha>.trash-<random>.
	// A name starting with a dot is never a release, so no reader takes a folder that is
	// half removed for one.
	trashInfix = ".trash-"
)

func releasePath(base, sha string) string { return filepath.Join(base, releasesDir, sha) }

// complete reports whether releases/<sha> holds a finished upload, and its checksum.
func complete(base, sha string) (bool, string) {
	b, err := os.ReadFile(filepath.Join(releasePath(base, sha), markerFile))
	sum := strings.TrimSpace(string(b))
	return err == nil && sum != "", sum
}

// linkSHA returns the release a link of the host points at, "" when there is no link.
func linkSHA(base, name string) (string, error) {
	target, err := os.Readlink(filepath.Join(base, name))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return filepath.Base(target), nil
}

// switchLink points base/name at releases/<sha> atomically: a new symlink under a temporary
// name is renamed over the old one, so readers always find a link.
func switchLink(base, name, sha string) error {
	tmp := filepath.Join(base, name+tmpInfix+randomSuffix())
	if err := os.Symlink(filepath.Join(releasesDir, sha), tmp); err != nil {
		return fmt.Errorf("point %s at %s: %w", name, short(sha), err)
	}
	if err := os.Rename(tmp, filepath.Join(base, name)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("point %s at %s: %w", name, short(sha), err)
	}
	return nil
}

// isReleaseName reports whether an entry of releases/ may be a release: not an upload in
// progress (<sha>.tmp-x) nor a folder set aside to be removed (.<sha>.trash-x).
func isReleaseName(name string) bool {
	return !strings.HasPrefix(name, ".") && !strings.Contains(name, tmpInfix)
}

// removeRelease removes releases/<name> so that no reader ever finds it half removed: it
// is first renamed aside under a name that is no release (atomic), then deleted. A removal
// cut part-way leaves only that trash folder, which a later prune or upload deletes.
func removeRelease(base, name string) error {
	dir := filepath.Join(base, releasesDir, name)
	trash := filepath.Join(base, releasesDir, "."+name+trashInfix+randomSuffix())
	if err := os.Rename(dir, trash); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	return os.RemoveAll(trash)
}

// removeTrash deletes what removals cut part-way left in releases/ (.<sha>.trash-x).
func removeTrash(base string) error {
	entries, err := os.ReadDir(filepath.Join(base, releasesDir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") && strings.Contains(e.Name(), trashInfix) {
			errs = append(errs, os.RemoveAll(filepath.Join(base, releasesDir, e.Name())))
		}
	}
	return errors.Join(errs...)
}

func randomSuffix() string {
	b := make([]byte, 6)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// stamp records a release as just used (uploaded or activated): pruning and State order
// releases by the marker's modification time.
func stamp(base, sha string) error {
	now := time.Now()
	return os.Chtimes(filepath.Join(releasePath(base, sha), markerFile), now, now)
}

// listReleases returns the complete releases of the host, most recently used first.
func listReleases(base string) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(base, releasesDir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	type rel struct {
		sha  string
		used time.Time
	}
	var rels []rel
	for _, e := range entries {
		if !e.IsDir() || !isReleaseName(e.Name()) {
			continue
		}
		fi, err := os.Stat(filepath.Join(base, releasesDir, e.Name(), markerFile))
		if err != nil || fi.Size() == 0 {
			continue
		}
		rels = append(rels, rel{e.Name(), fi.ModTime()})
	}
	sort.Slice(rels, func(i, j int) bool {
		if !rels[i].used.Equal(rels[j].used) {
			return rels[i].used.After(rels[j].used)
		}
		return rels[i].sha < rels[j].sha
	})
	shas := make([]string, len(rels))
	for i, r := range rels {
		shas[i] = r.sha
	}
	return shas, nil
}
