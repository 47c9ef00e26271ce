package deployertest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/immunity-app/immunity/deployers"
)

// Harness is what a deployer's test supplies to Run.
type Harness struct {
	// Deployer is the deployer under test, configured with Run, Health and Keep.
	Deployer deployers.Deployer
	// NewHost returns a fresh host (empty Base, free Port, URL http://127.0.0.1:Port) and
	// registers a t.Cleanup that stops its app.
	NewHost func(t *testing.T) deployers.Host
	// Keep is the number of releases the deployer keeps per host, at least 2.
	Keep int
	// Path maps a path on the host, relative to its Base, to a path this test process can
	// open. Nil means filepath.Join(h.Base, rel): hosts are folders of this machine.
	Path func(h deployers.Host, rel string) string
	// Release builds a release of the test app. Nil means NewRelease.
	Release func(t testing.TB, version string) deployers.Release
}

func (h Harness) path(host deployers.Host, rel string) string {
	if h.Path != nil {
		return h.Path(host, rel)
	}
	return filepath.Join(host.Base, rel)
}

func (h Harness) release(t testing.TB, version string) deployers.Release {
	if h.Release != nil {
		return h.Release(t, version)
	}
	return NewRelease(t, version)
}

// link returns the SHA a link of the host (current, previous) points at, "" when absent.
func (h Harness) link(t testing.TB, host deployers.Host, name string) string {
	t.Helper()
	target, err := os.Readlink(h.path(host, name))
	if os.IsNotExist(err) {
		return ""
	}
	if err != nil {
		t.Fatalf("read link %s of %s: %v", name, host, err)
	}
	if filepath.Base(filepath.Dir(target)) != "releases" {
		t.Fatalf("link %s of %s points at %q, want releases/<sha>", name, host, target)
	}
	return filepath.Base(target)
}

// exists reports whether a path of the host exists (without following a final symlink).
func (h Harness) exists(t testing.TB, host deployers.Host, rel string) bool {
	t.Helper()
	_, err := os.Lstat(h.path(host, rel))
	if err != nil && !os.IsNotExist(err) {
		t.Fatalf("stat %s of %s: %v", rel, host, err)
	}
	return err == nil
}

// deploy uploads and activates a release, failing the test on error.
func (h Harness) deploy(ctx context.Context, t testing.TB, host deployers.Host, rel deployers.Release) {
	t.Helper()
	if err := h.Deployer.Upload(ctx, host, rel); err != nil {
		t.Fatalf("upload: %v", err)
	}
	if err := h.Deployer.Activate(ctx, host, rel.SHA); err != nil {
		t.Fatalf("activate: %v", err)
	}
}

func (h Harness) state(ctx context.Context, t testing.TB, host deployers.Host) deployers.HostState {
	t.Helper()
	st, err := h.Deployer.State(ctx, host)
	if err != nil {
		t.Fatalf("state of %s: %v", host, err)
	}
	return st
}

// Answer is what the test app says on GET /.
type Answer struct {
	Release string `json:"release"`
	Version string `json:"version"`
	Region  string `json:"region"`
	Host    string `json:"host"`
	Extra   string `json:"extra"`
	PID     int    `json:"pid"`
	WD      string `json:"wd"`
}

// Ask fetches GET / from the host's app.
func Ask(ctx context.Context, host deployers.Host) (Answer, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, host.URL+"/", nil)
	if err != nil {
		return Answer{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return Answer{}, fmt.Errorf("ask the app on %s: %w", host, err)
	}
	defer resp.Body.Close()
	var a Answer
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		return Answer{}, fmt.Errorf("ask the app on %s: %w", host, err)
	}
	return a, nil
}

// mustServe checks the host's app answers with that release and returns its answer.
func mustServe(ctx context.Context, t testing.TB, host deployers.Host, rel deployers.Release, version string) Answer {
	t.Helper()
	a, err := Ask(ctx, host)
	if err != nil {
		t.Fatal(err)
	}
	if a.Release != rel.SHA || a.Version != version {
		t.Fatalf("%s answers release %s version %q, want %s version %q", host, a.Release, a.Version, rel.SHA, version)
	}
	return a
}
