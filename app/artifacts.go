package app

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/immunity-app/immunity/deployers"
	"github.com/immunity-app/immunity/internal/wait"
	"github.com/immunity-app/immunity/pipeline/release"
	"github.com/immunity-app/immunity/store"
)

// Artifacts with replicas. On PostgreSQL a commit is built once across every replica: the
// build of app@sha is claimed as the lease build/APP/SHA (renewed while it runs), and a
// replica finding it claimed waits for the artifact and uses it. The artifact is a file in
// server.artifacts_dir when the replicas share one, else it is stored in the database
// (store.PutArtifact: chunks with their sha256) and each replica deploys from a copy in
// its data_dir, fetched and verified. A stored artifact that fails its checks is said in
// the log, deleted and built again.

// buildPoll is how often a replica waiting for another's build looks again.
const buildPoll = 250 * time.Millisecond

// errNotBuilt: no replica finished the build yet.
var errNotBuilt = errors.New("not built yet")

// buildOnce returns the release of spec, built by whichever replica claims it first.
func (b builder) buildOnce(ctx context.Context, spec release.Spec) (deployers.Release, error) {
	c, err := release.Lookup(spec.RepoPath, spec.SHA)
	if err != nil {
		return deployers.Release{}, fmt.Errorf("build %s@%s: %w", spec.App, spec.SHA, err)
	}
	spec.SHA = c.SHA
	for {
		rel, err := b.built(ctx, spec)
		if err == nil {
			return rel, nil
		}
		if !errors.Is(err, errNotBuilt) && !errors.Is(err, store.ErrArtifactCorrupt) {
			return deployers.Release{}, err
		}
		hctx, stop := context.WithCancel(ctx)
		h := b.st.Hold(hctx, "build/"+spec.App+"/"+spec.SHA, b.st.LeaseTTL())
		if _, held := h.Lease(); held {
			rel, err := b.buildHeld(ctx, spec)
			stop()
			<-h.Done()
			return rel, err
		}
		stop()
		<-h.Done()
		if err := wait.Sleep(ctx, buildPoll); err != nil {
			return deployers.Release{}, fmt.Errorf("build %s@%s: waiting for another replica's build: %w", spec.App, spec.SHA[:7], err)
		}
	}
}

// buildHeld builds under the build's claim: unless another replica finished it meanwhile,
// a corrupt stored artifact is deleted and the commit built and stored.
func (b builder) buildHeld(ctx context.Context, spec release.Spec) (deployers.Release, error) {
	rel, err := b.built(ctx, spec)
	switch {
	case err == nil:
		return rel, nil
	case errors.Is(err, store.ErrArtifactCorrupt):
		b.logs.ErrorContext(ctx, "stored artifact failed its sha256 check; building it again", "app", spec.App, "sha", spec.SHA, "err", err)
		if err := b.st.DeleteArtifact(ctx, spec.App, spec.SHA); err != nil {
			return deployers.Release{}, err
		}
		if err := os.Remove(b.localArtifact(spec)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return deployers.Release{}, fmt.Errorf("build %s@%s: %w", spec.App, spec.SHA[:7], err)
		}
	case !errors.Is(err, errNotBuilt):
		return deployers.Release{}, err
	}
	rel, err = release.Build(ctx, spec)
	if err != nil || b.artifacts != "" {
		return rel, err
	}
	sum, err := b.st.PutArtifact(ctx, spec.App, spec.SHA, rel.Artifact)
	if err != nil {
		return deployers.Release{}, fmt.Errorf("build %s@%s: %w", spec.App, spec.SHA[:7], err)
	}
	if sum != rel.Checksum { // stored by a replica that lost the claim: that one is kept
		return b.built(ctx, spec)
	}
	return rel, nil
}

// built returns the release when its artifact is there: in the shared artifacts_dir, or
// stored in the database (fetched into data_dir, verified, unless already there).
func (b builder) built(ctx context.Context, spec release.Spec) (deployers.Release, error) {
	rel := deployers.Release{App: spec.App, SHA: spec.SHA}
	if b.artifacts != "" {
		rel.Artifact = filepath.Join(b.artifacts, spec.App, spec.SHA+".tar.gz")
		if _, err := os.Stat(rel.Artifact); errors.Is(err, os.ErrNotExist) {
			return rel, errNotBuilt
		}
		sum, err := deployers.FileChecksum(rel.Artifact)
		if err != nil {
			return rel, fmt.Errorf("build %s@%s: checksum: %w", spec.App, spec.SHA[:7], err)
		}
		rel.Checksum = sum
		return rel, nil
	}
	rel.Artifact = b.localArtifact(spec)
	sum, err := b.st.ArtifactChecksum(ctx, spec.App, spec.SHA)
	if errors.Is(err, store.ErrNotFound) {
		return rel, errNotBuilt
	}
	if err != nil {
		return rel, err
	}
	rel.Checksum = sum
	if have, err := deployers.FileChecksum(rel.Artifact); err == nil && have == sum {
		return rel, nil
	}
	if err := os.MkdirAll(filepath.Dir(rel.Artifact), 0o755); err != nil {
		return rel, err
	}
	f, err := os.CreateTemp(filepath.Dir(rel.Artifact), filepath.Base(rel.Artifact)+".*.tmp")
	if err != nil {
		return rel, err
	}
	defer os.Remove(f.Name())
	_, err = b.st.FetchArtifact(ctx, spec.App, spec.SHA, f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(f.Name(), rel.Artifact)
	}
	if err != nil {
		return rel, fmt.Errorf("build %s@%s: %w", spec.App, spec.SHA[:7], err)
	}
	return rel, nil
}

// localArtifact is where this replica keeps its copy of a stored artifact (where
// release.Build writes it).
func (b builder) localArtifact(spec release.Spec) string {
	return filepath.Join(b.dir, "artifacts", spec.App, spec.SHA+".tar.gz")
}
