package local

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/immunity-app/immunity/deployers"
)

// State reads the host's links and lists its complete releases, newest first.
func (d *Deployer) State(ctx context.Context, h deployers.Host) (deployers.HostState, error) {
	e, err := d.lock(&h)
	if err != nil {
		return deployers.HostState{}, err
	}
	defer e.mu.Unlock()
	st, err := readState(h.Base)
	if err != nil {
		return st, fmt.Errorf("state of %s: %w", h, err)
	}
	return st, nil
}

func readState(base string) (deployers.HostState, error) {
	var st deployers.HostState
	var err error
	if st.Current, err = linkSHA(base, currentLink); err != nil {
		return st, err
	}
	if st.Previous, err = linkSHA(base, prevLink); err != nil {
		return st, err
	}
	st.Releases, err = listReleases(base)
	return st, err
}

// LogPath is the file the host's app writes its stdout and stderr to (appended across
// starts), for links and log excerpts in reports.
func (d *Deployer) LogPath(h deployers.Host) string { return filepath.Join(h.Base, logFile) }
