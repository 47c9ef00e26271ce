package pipeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/immunity-app/immunity/deployers"
	"github.com/immunity-app/immunity/internal/proc"
)

// CommandTester runs an app's test command on this machine, in an unpacked copy of the
// release (under Dir/testbeds), against the host whose URL the engine put in
// IMMUNITY_BASE_URL. Its environment is explicit: deployers.BaseEnv, the config's
// tests.env and the IMMUNITY_* facts of the run, nothing else of the server's. The
// command and whatever it starts end with a timeout, a cancel, or the server's death.
type CommandTester struct {
	Dir string
}

var testbedMu sync.Mutex

// Test runs the tests; the error says how they ended when they did not pass.
func (t CommandTester) Test(ctx context.Context, rel deployers.Release, h deployers.Host, tests deployers.Tests) (string, error) {
	dir, err := t.testbed(rel)
	if err != nil {
		return "", err
	}
	if len(tests.Command) == 0 {
		return "", errors.New("no test command")
	}
	ctx, cancel := context.WithTimeout(ctx, tests.Timeout)
	defer cancel()
	argv := tests.Command
	name := argv[0]
	if !filepath.IsAbs(name) && filepath.Base(name) != name {
		name = filepath.Join(dir, name) // a program shipped in the release
	}
	cmd := exec.CommandContext(ctx, name, argv[1:]...)
	cmd.Dir = dir
	cmd.Env = deployers.BaseEnv() // never the server's own secrets
	for _, k := range slices.Sorted(maps.Keys(tests.Env)) {
		cmd.Env = append(cmd.Env, k+"="+tests.Env[k])
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 5 * time.Second
	proc.Supervise(cmd) // the tests' children go with a timeout, and all of it with the server
	err = cmd.Run()
	if ctx.Err() == context.DeadlineExceeded {
		err = fmt.Errorf("timed out after %s", tests.Timeout)
	}
	return tail(out.String(), 4000), err
}

// testbed unpacks a release once for running its tests here.
func (t CommandTester) testbed(rel deployers.Release) (string, error) {
	testbedMu.Lock()
	defer testbedMu.Unlock()
	dir := filepath.Join(t.Dir, "testbeds", rel.App, rel.SHA)
	if _, err := os.Stat(filepath.Join(dir, ".complete")); err == nil {
		return dir, nil
	}
	os.RemoveAll(dir)
	tmp := dir + ".tmp"
	os.RemoveAll(tmp)
	f, err := os.Open(rel.Artifact)
	if err != nil {
		return "", fmt.Errorf("unpack release for tests: %w", err)
	}
	defer f.Close()
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return "", err
	}
	if err := deployers.Unpack(f, tmp); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(tmp, ".complete"), []byte(rel.Checksum), 0o644); err != nil {
		return "", err
	}
	return dir, os.Rename(tmp, dir)
}

// PruneTestbeds removes the test beds of an app's releases not in keep.
func (t CommandTester) PruneTestbeds(app string, keep map[string]bool) error {
	testbedMu.Lock()
	defer testbedMu.Unlock()
	dir := filepath.Join(t.Dir, "testbeds", app)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, ent := range entries {
		sha := strings.TrimSuffix(ent.Name(), ".tmp")
		if !keep[sha] {
			errs = append(errs, os.RemoveAll(filepath.Join(dir, ent.Name())))
		}
	}
	return errors.Join(errs...)
}
