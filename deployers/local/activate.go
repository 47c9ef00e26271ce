package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/immunity-app/immunity/deployers"
)

// Activate switches the host to the release, restarts the app, waits for it to be healthy
// and prunes old releases.
func (d *Deployer) Activate(ctx context.Context, h deployers.Host, sha string) error {
	e, err := d.lock(&h)
	if err != nil {
		return err
	}
	defer e.mu.Unlock()
	if err := d.activate(ctx, h, e, sha); err != nil {
		return fmt.Errorf("activate %s@%s on %s: %w", h.App, short(sha), h, err)
	}
	return nil
}

func (d *Deployer) activate(ctx context.Context, h deployers.Host, e *host, sha string) error {
	if err := d.switchChecked(ctx, h, sha); err != nil {
		return err
	}
	return d.restart(ctx, h, e)
}

// Switch points current at the release (previous at the old one) and starts nothing.
func (d *Deployer) Switch(ctx context.Context, h deployers.Host, sha string) error {
	e, err := d.lock(&h)
	if err != nil {
		return err
	}
	defer e.mu.Unlock()
	if err := d.switchChecked(ctx, h, sha); err != nil {
		return fmt.Errorf("switch %s@%s on %s: %w", h.App, short(sha), h, err)
	}
	return nil
}

// Restart stops the host's app, starts the one of its current release, waits until it
// is healthy and prunes old releases.
func (d *Deployer) Restart(ctx context.Context, h deployers.Host) error {
	e, err := d.lock(&h)
	if err != nil {
		return err
	}
	defer e.mu.Unlock()
	if err := d.restart(ctx, h, e); err != nil {
		return fmt.Errorf("restart %s on %s: %w", h.App, h, err)
	}
	return nil
}

func (d *Deployer) switchChecked(ctx context.Context, h deployers.Host, sha string) error {
	if err := checkSHA(sha); err != nil {
		return err
	}
	if ok, _ := complete(h.Base, sha); !ok {
		return deployers.ErrNotFound
	}
	if h.Port == 0 {
		return errors.New("host has no port for the app")
	}
	return d.switchTo(ctx, h, sha)
}

func (d *Deployer) restart(ctx context.Context, h deployers.Host, e *host) error {
	sha, err := linkSHA(h.Base, currentLink)
	if err != nil {
		return err
	}
	if ok, _ := complete(h.Base, sha); sha == "" || !ok {
		return fmt.Errorf("current points at %q: %w", short(sha), deployers.ErrNotFound)
	}
	if err := d.stop(ctx, h, e); err != nil {
		return err
	}
	if err := d.start(ctx, h, e, sha); err != nil {
		return err
	}
	if err := d.prune(ctx, h); err != nil {
		d.hostLog(h).WarnContext(ctx, "prune old releases", "err", err)
	}
	return nil
}

// switchTo points previous at the old current (if it changes) and then current at sha.
// In that order a crash in between leaves previous == current, never a lost rollback target.
func (d *Deployer) switchTo(ctx context.Context, h deployers.Host, sha string) error {
	old, err := linkSHA(h.Base, currentLink)
	if err != nil {
		return err
	}
	if old != "" && old != sha {
		if err := deployers.CheckFence(ctx); err != nil {
			return err
		}
		if err := switchLink(h.Base, prevLink, old); err != nil {
			return err
		}
	}
	if err := deployers.CheckFence(ctx); err != nil {
		return err
	}
	if err := switchLink(h.Base, currentLink, sha); err != nil {
		return err
	}
	if err := stamp(h.Base, sha); err != nil {
		return err
	}
	d.hostLog(h).InfoContext(ctx, "switched current", "sha", sha, "previous", old)
	return nil
}

// prune keeps current, previous and the most recently used other releases up to Keep,
// and removes what crashes left behind (temporary folders and links, incomplete releases,
// releases whose removal was cut part-way). A release is renamed aside before it is
// deleted (removeRelease), so a prune cut part-way leaves no half release behind. The
// releases current and previous point at are kept whatever they hold.
func (d *Deployer) prune(ctx context.Context, h deployers.Host) error {
	rels, err := listReleases(h.Base)
	if err != nil {
		return err
	}
	cur, err := linkSHA(h.Base, currentLink)
	if err != nil {
		return err
	}
	prev, err := linkSHA(h.Base, prevLink)
	if err != nil {
		return err
	}
	keep := keepSet(rels, cur, prev, d.opts.Keep)
	entries, err := os.ReadDir(filepath.Join(h.Base, releasesDir))
	if err != nil {
		return err
	}
	var errs []error
	for _, ent := range entries {
		name := ent.Name()
		if keep[name] || name == cur || name == prev {
			continue
		}
		if err := deployers.CheckFence(ctx); err != nil {
			return err
		}
		remove := removeRelease
		if !isReleaseName(name) { // an upload's leftover or trash: never a release
			remove = func(base, name string) error { return os.RemoveAll(filepath.Join(base, releasesDir, name)) }
		}
		if err := remove(h.Base, name); err != nil {
			errs = append(errs, err)
			continue
		}
		d.hostLog(h).InfoContext(ctx, "pruned", "entry", name)
	}
	if err := deployers.CheckFence(ctx); err != nil {
		return errors.Join(append(errs, err)...)
	}
	errs = append(errs, removeTempFiles(h.Base))
	return errors.Join(errs...)
}

// keepSet chooses the releases to keep: current, previous, then the newest until keep.
func keepSet(newestFirst []string, cur, prev string, keep int) map[string]bool {
	set := map[string]bool{}
	for _, sha := range []string{cur, prev} {
		if sha != "" && slices.Contains(newestFirst, sha) {
			set[sha] = true
		}
	}
	for _, sha := range newestFirst {
		if len(set) >= keep {
			break
		}
		set[sha] = true
	}
	return set
}

// removeTempFiles removes the temporary links and pid files (NAME.tmp-*) a crash left
// behind in the host folder.
func removeTempFiles(base string) error {
	entries, err := os.ReadDir(base)
	if err != nil {
		return err
	}
	for _, ent := range entries {
		if !ent.IsDir() && strings.Contains(ent.Name(), tmpInfix) {
			if err := os.Remove(filepath.Join(base, ent.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}
