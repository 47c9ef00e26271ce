package local

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/immunity-app/immunity/deployers"
)

// Upload unpacks the release into releases/<sha> unless a complete copy is already there.
func (d *Deployer) Upload(ctx context.Context, h deployers.Host, rel deployers.Release) error {
	e, err := d.lock(&h)
	if err != nil {
		return err
	}
	defer e.mu.Unlock()
	if err := d.upload(ctx, h, rel); err != nil {
		return fmt.Errorf("upload %s@%s to %s: %w", rel.App, short(rel.SHA), h, err)
	}
	return nil
}

func (d *Deployer) upload(ctx context.Context, h deployers.Host, rel deployers.Release) error {
	if err := checkSHA(rel.SHA); err != nil {
		return err
	}
	if ok, sum := complete(h.Base, rel.SHA); ok {
		if sum != rel.Checksum {
			d.hostLog(h).WarnContext(ctx, "release already on host with another checksum; keeping it",
				"sha", rel.SHA, "on_host", sum, "artifact", rel.Checksum)
		}
		return nil
	}
	sum, err := deployers.FileChecksum(rel.Artifact)
	if err != nil {
		return fmt.Errorf("checksum artifact: %w", err)
	}
	if rel.Checksum == "" || sum != rel.Checksum {
		return fmt.Errorf("artifact %s has sha256 %s, want %q", rel.Artifact, sum, rel.Checksum)
	}
	releases := filepath.Join(h.Base, releasesDir)
	if err := os.MkdirAll(releases, 0o755); err != nil {
		return err
	}
	if err := deployers.CheckFence(ctx); err != nil {
		return err
	}
	if err := removeTrash(h.Base); err != nil {
		d.hostLog(h).WarnContext(ctx, "remove what a cut removal left", "err", err)
	}
	tmp, err := os.MkdirTemp(releases, rel.SHA+tmpInfix)
	if err != nil {
		return err
	}
	if err := fill(ctx, tmp, rel); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	final := releasePath(h.Base, rel.SHA)
	if err := deployers.CheckFence(ctx); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	if err := removeRelease(h.Base, rel.SHA); err != nil { // an incomplete leftover of a crash
		os.RemoveAll(tmp)
		return err
	}
	if err := os.Rename(tmp, final); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	d.hostLog(h).InfoContext(ctx, "release uploaded", "sha", rel.SHA)
	return nil
}

// fill unpacks the artifact into dir and writes the completion marker last.
func fill(ctx context.Context, dir string, rel deployers.Release) error {
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	f, err := os.Open(rel.Artifact)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := deployers.Unpack(ctxReader{ctx, f}, dir); err != nil {
		return err
	}
	marker, err := os.Create(filepath.Join(dir, markerFile))
	if err != nil {
		return err
	}
	_, err = io.WriteString(marker, rel.Checksum+"\n")
	if err == nil {
		err = marker.Sync()
	}
	if cerr := marker.Close(); err == nil {
		err = cerr
	}
	return err
}

// ctxReader stops a long unpack when the context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, fmt.Errorf("unpack interrupted: %w", err)
	}
	return c.r.Read(p)
}
