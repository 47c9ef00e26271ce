package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/immunity-app/immunity/pipeline/config"
	"github.com/immunity-app/immunity/store"
)

// Disk stays bounded: once a stage ends, the app's artifacts (and the test beds unpacked
// from them) that no host keeps any more are deleted. Kept: every release live on a host,
// the last keep_releases releases that went live in each region (what the hosts keep,
// previous included), the last keep_releases built (a person may still deploy one), and
// the releases of runs in flight and open rollbacks.

// testbedPruner is a Tester that keeps unpacked releases (CommandTester).
type testbedPruner interface {
	PruneTestbeds(app string, keep map[string]bool) error
}

// pruneDisk deletes what no host of the app keeps; it logs and goes on when it cannot.
func (e *Engine) pruneDisk(ctx context.Context, a *config.App) {
	// Only releases read before the kept set was made are candidates: one built since
	// (its run started meanwhile) is not in that set, and must not be taken for unkept.
	rels, err := e.st.Releases(ctx, a.Name)
	if err != nil {
		e.log.Warn("prune releases", "app", a.Name, "err", err)
		return
	}
	keep, err := e.keptReleases(ctx, a)
	if err != nil {
		e.log.Warn("prune releases", "app", a.Name, "err", err)
		return
	}
	for _, r := range rels {
		if keep[r.SHA] || r.State != store.ReleaseReady || r.Artifact == "" {
			continue
		}
		if err := os.Remove(r.Artifact); err != nil && !errors.Is(err, fs.ErrNotExist) {
			e.log.Warn("prune release", "app", a.Name, "sha", r.SHA, "err", err)
			continue
		}
		// Its stored copy (for replicas, on PostgreSQL) and its state, in one write.
		if err := e.st.PruneRelease(ctx, a.Name, r.SHA, "no host keeps it; its artifact was deleted"); err != nil {
			e.log.Warn("prune release", "app", a.Name, "sha", r.SHA, "err", err)
			continue
		}
		e.reached("prune")
		e.log.Info("release pruned", "app", a.Name, "sha", r.SHA, "artifact", filepath.Base(r.Artifact))
	}
	if p, ok := e.tester.Tester.(testbedPruner); ok {
		if err := p.PruneTestbeds(a.Name, keep); err != nil {
			e.log.Warn("prune test beds", "app", a.Name, "err", err)
		}
	}
}

// keptReleases is the set of an app's releases some host still keeps or may need.
func (e *Engine) keptReleases(ctx context.Context, a *config.App) (map[string]bool, error) {
	keep := map[string]bool{}
	n := a.KeepReleases
	if n <= 0 {
		n = 5
	}
	for _, reg := range a.Regions {
		live, err := e.st.Live(ctx, a.Name, reg.Name)
		if err != nil {
			return nil, err
		}
		for _, sha := range live {
			keep[sha] = true
		}
		hist, err := e.st.History(ctx, a.Name, reg.Name, 1000)
		if err != nil {
			return nil, err
		}
		seen := map[string]bool{}
		for _, h := range hist { // newest first
			if len(seen) >= n {
				break
			}
			seen[h.SHA] = true
			keep[h.SHA] = true
		}
	}
	rels, err := e.st.Releases(ctx, a.Name) // newest first
	if err != nil {
		return nil, err
	}
	for i, r := range rels {
		if i < n {
			keep[r.SHA] = true
		}
	}
	runs, err := e.st.Runs(ctx, a.Name, true, 0)
	if err != nil {
		return nil, err
	}
	for _, r := range runs {
		keep[r.SHA] = true
	}
	open, err := e.st.OpenRollbacks(ctx)
	if err != nil {
		return nil, err
	}
	for _, rb := range open {
		for _, h := range rb.Hosts {
			keep[h.To] = true
		}
	}
	if len(keep) == 0 {
		return nil, fmt.Errorf("nothing live or in flight for %s: not pruning", a.Name)
	}
	return keep, nil
}
