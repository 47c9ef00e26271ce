package deployertest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/immunity-app/immunity/internal/freeport"

	"github.com/immunity-app/immunity/deployers"
)

// TestRestartScript runs bin/restart the way a restart-command deployer (ssh) does: in
// BASE/current, with IMMUNITY_BASE set and the port in BASE/port.
func TestRestartScript(t *testing.T) {
	port, err := freeport.Get()
	if err != nil {
		t.Fatal(err)
	}
	h := deployers.Host{Region: "r", Name: "h", Base: t.TempDir(), Port: port, URL: fmt.Sprintf("http://127.0.0.1:%d", port)}
	if err := WritePortFile(h); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := StopRestarted(h); err != nil {
			t.Error(err)
		}
	})
	ctx := context.Background()

	good := place(t, h, NewRelease(t, "v1"))
	if out, err := restart(h, good); err != nil {
		t.Fatalf("bin/restart: %v\n%s", err, out)
	}
	if a, err := askUntilUp(ctx, h); err != nil || a.Release != good || filepath.Base(a.WD) != good {
		t.Fatalf("after bin/restart the app answers %+v, %v; want release %s run in its folder", a, err, good)
	}

	bad := place(t, h, NewRelease(t, "fail-exit"))
	out, err := restart(h, bad)
	if err == nil || !strings.Contains(out, "refusing to start") {
		t.Fatalf("bin/restart of a release that exits: err %v, output %q; want a failure with the log tail", err, out)
	}
	if _, err := Ask(ctx, h); err == nil {
		t.Fatal("the old app still answers after bin/restart stopped it")
	}
}

// place unpacks the release under BASE/releases/<sha> and points current at it.
func place(t *testing.T, h deployers.Host, rel deployers.Release) string {
	t.Helper()
	f, err := os.Open(rel.Artifact)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := deployers.Unpack(f, filepath.Join(h.Base, "releases", rel.SHA)); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(h.Base, "current")
	os.Remove(link)
	if err := os.Symlink(filepath.Join("releases", rel.SHA), link); err != nil {
		t.Fatal(err)
	}
	return rel.SHA
}

func restart(h deployers.Host, sha string) (string, error) {
	cmd := exec.Command("bin/restart")
	cmd.Dir = filepath.Join(h.Base, "current")
	cmd.Env = append(os.Environ(), "PORT=", "IMMUNITY_BASE="+h.Base, "IMMUNITY_RELEASE="+sha)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// askUntilUp asks the app, retrying for a few seconds while it starts listening.
func askUntilUp(ctx context.Context, h deployers.Host) (Answer, error) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		a, err := Ask(ctx, h)
		if err == nil || time.Now().After(deadline) {
			return a, err
		}
		time.Sleep(50 * time.Millisecond)
	}
}
