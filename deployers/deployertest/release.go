package deployertest

import (
	"crypto/sha1"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/immunity-app/immunity/deployers"
)

// Argv is the argv the deployer under test must be configured with, relative to the
// release folder.
var Argv = []string{"bin/testapp"}

// Health is the health check path of the test app.
const Health = "/healthz"

// AppName is the App of every test release.
const AppName = "testapp"

// restartScript is bin/restart of every release (see restart.sh).
//
//go:embed restart.sh
var restartScript string

// build holds the test app compiled once per test binary and the releases packed from it.
var build struct {
	once     sync.Once
	dir      string // temp folder holding the binary and the artifacts
	binary   string // the compiled test app
	err      error
	mu       sync.Mutex
	releases map[string]deployers.Release
}

// Main runs the tests and removes the test app build afterwards. Call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
	os.Exit(code)
}

// SHA returns the fake commit SHA of a test release version (40 hex digits).
func SHA(version string) string {
	sum := sha1.Sum([]byte(version))
	return hex.EncodeToString(sum[:])
}

// NewRelease returns the release of the test app with that version: the app binary, a
// VERSION file and, for versions starting with "fail-exit" or "fail-unhealthy", a `mode`
// file selecting that failure. Releases are packed once per version and shared: they are
// immutable.
func NewRelease(t testing.TB, version string) deployers.Release {
	t.Helper()
	build.once.Do(buildApp)
	if build.err != nil {
		t.Fatalf("build the test app: %v", build.err)
	}
	build.mu.Lock()
	defer build.mu.Unlock()
	if rel, ok := build.releases[version]; ok {
		return rel
	}
	rel, err := packRelease(version)
	if err != nil {
		t.Fatalf("pack test release %s: %v", version, err)
	}
	build.releases[version] = rel
	return rel
}

func buildApp() {
	build.releases = map[string]deployers.Release{}
	dir, err := os.MkdirTemp("", "deployertest-")
	if err != nil {
		build.err = err
		return
	}
	build.dir = dir
	build.binary = filepath.Join(dir, "testapp")
	if strings.ContainsAny(build.binary, "'\n") || os.Chmod(dir, 0o755) != nil {
		build.err = fmt.Errorf("unusable temp folder %q", dir)
		return
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		build.err = fmt.Errorf("build the test app: %w", err)
		return
	}
	cmd := exec.Command(goBin, "build", "-ldflags=-s -w", "-o", build.binary, ".")
	cmd.Dir = filepath.Join(sourceDir(), "testdata", "app")
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=", "GOTOOLCHAIN=local")
	if out, err := cmd.CombinedOutput(); err != nil {
		build.err = fmt.Errorf("go build in %s: %w\n%s", cmd.Dir, err, out)
	}
}

// sourceDir is the folder of this package's source, where testdata/app lives.
func sourceDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(file)
}

// packRelease packs a release holding a VERSION file, an optional `mode` file, bin/restart
// and bin/testapp, a launcher that execs the binary compiled once: every release has its
// own files and checksum while staying a few hundred bytes, so tests unpack them in no time.
func packRelease(version string) (deployers.Release, error) {
	dir := filepath.Join(build.dir, "v-"+version)
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		return deployers.Release{}, err
	}
	files := map[string]string{
		"bin/testapp": "#!/bin/sh\nexec '" + build.binary + "' \"$@\"\n",
		"bin/restart": restartScript,
		"VERSION":     version + "\n",
	}
	for _, mode := range []string{"exit", "unhealthy"} {
		if strings.HasPrefix(version, "fail-"+mode) {
			files["mode"] = mode + "\n"
		}
	}
	var paths []string
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o755); err != nil {
			return deployers.Release{}, err
		}
		paths = append(paths, name)
	}
	artifact := filepath.Join(build.dir, "release-"+version+".tar.gz")
	f, err := os.Create(artifact)
	if err != nil {
		return deployers.Release{}, err
	}
	err = deployers.Pack(dir, paths, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return deployers.Release{}, err
	}
	sum, err := deployers.FileChecksum(artifact)
	if err != nil {
		return deployers.Release{}, err
	}
	return deployers.Release{App: AppName, SHA: SHA(version), Artifact: artifact, Checksum: sum}, nil
}

// WritePortFile writes the host's port to BASE/port, where bin/restart reads it when the
// deployer does not set PORT (ssh). It creates Base.
func WritePortFile(h deployers.Host) error {
	if err := os.MkdirAll(h.Base, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(h.Base, "port"), []byte(strconv.Itoa(h.Port)+"\n"), 0o644)
}

// StopRestarted stops a test app that bin/restart started on the host (pid in
// BASE/testapp.pid), for NewHost cleanups of deployers that do not manage processes.
func StopRestarted(h deployers.Host) error {
	b, err := os.ReadFile(filepath.Join(h.Base, "testapp.pid"))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return fmt.Errorf("testapp.pid of %s: %q", h, b)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("stop test app %d of %s: %w", pid, h, err)
	}
	return nil
}
