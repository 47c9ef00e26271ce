package local_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/immunity-app/immunity/deployers"
	"github.com/immunity-app/immunity/deployers/deployertest"
	"github.com/immunity-app/immunity/deployers/local"
)

var errLost = errors.New("lease lost")

// pausedAt is a fence that lets effects happen until the call reaches the point when
// reached says so; there the server pauses (right after the fence's check passed, before
// the effect): meanwhile is what another server does while it is paused. Every later
// check refuses, as the lease was lost during the pause.
func pausedAt(reached func() bool, meanwhile func()) func() error {
	var mu sync.Mutex
	paused := false
	return func() error {
		mu.Lock()
		defer mu.Unlock()
		if paused {
			return errLost
		}
		if reached() {
			paused = true
			meanwhile()
		}
		return nil
	}
}

// TestARestartInFlightStopsAtItsFence: a server paused in the middle of a restart, right
// before it started the app, goes on after another server restarted the host's app: the
// process it starts then is its own to stop, and app.pid and the other's app are left
// alone; the restart answers the fence's error.
func TestARestartInFlightStopsAtItsFence(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	paused := newDeployer(t, local.Options{})
	h := newHost(t, paused)
	deploy(ctx, t, paused, h, "v1")
	heir := newDeployer(t, local.Options{})
	logged := starts(h)
	fence := pausedAt(func() bool { return starts(h) > logged }, func() {
		if err := heir.Restart(ctx, h); err != nil {
			t.Errorf("the other server's restart: %v", err)
		}
	})
	if err := paused.Restart(deployers.WithFence(ctx, fence), h); !errors.Is(err, errLost) {
		t.Fatalf("the restart that went on after the pause: %v; want the fence's error", err)
	}
	a, err := deployertest.Ask(ctx, h)
	if err != nil {
		t.Fatalf("the host's app after the paused restart went on: %v", err)
	}
	if pid := readPidFile(t, h); pid != a.PID {
		t.Errorf("app.pid names %d; want the other server's app %d, which answers", pid, a.PID)
	}
	for _, pid := range groupLeadersIn(t, h) {
		if pid != a.PID {
			waitGone(t, pid)
		}
	}
	if n := starts(h) - logged; n != 2 {
		t.Errorf("%d starts logged by the two restarts; want 2 (the paused one's, begun before the pause, and the other's)", n)
	}
}

// TestASwitchInFlightStopsAtItsFence: a server paused in the middle of a switch, after it
// read the host's current release, goes on after another server switched the host: it
// leaves current where the other put it.
func TestASwitchInFlightStopsAtItsFence(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	paused := newDeployer(t, local.Options{})
	h := newHost(t, paused)
	deploy(ctx, t, paused, h, "v1")
	v2, v3 := deployertest.NewRelease(t, "v2"), deployertest.NewRelease(t, "v3")
	for _, rel := range []deployers.Release{v2, v3} {
		if err := paused.Upload(ctx, h, rel); err != nil {
			t.Fatal(err)
		}
	}
	heir := newDeployer(t, local.Options{})
	fence := pausedAt(func() bool { return true }, func() {
		if err := heir.Switch(ctx, h, v3.SHA); err != nil {
			t.Errorf("the other server's switch: %v", err)
		}
	})
	if err := paused.Switch(deployers.WithFence(ctx, fence), h, v2.SHA); !errors.Is(err, errLost) {
		t.Fatalf("the switch that went on after the pause: %v; want the fence's error", err)
	}
	st, err := heir.State(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	if st.Current != v3.SHA {
		t.Errorf("current is %.7s after the paused switch went on; want %.7s, as the other server switched it", st.Current, v3.SHA)
	}
}

// starts counts the starts logged in the host's app.log.
func starts(h deployers.Host) int {
	b, _ := os.ReadFile(filepath.Join(h.Base, "app.log"))
	return strings.Count(string(b), "--- immunity: starting ")
}

func readPidFile(t *testing.T, h deployers.Host) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(h.Base, "app.pid"))
	if err != nil {
		t.Fatalf("app.pid: %v", err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// groupLeadersIn lists the live process group leaders running in the host's releases.
func groupLeadersIn(t *testing.T, h deployers.Host) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Skip("no /proc")
	}
	releases, err := filepath.EvalSymlinks(filepath.Join(h.Base, "releases"))
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, ent := range entries {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil || isZombie(pid) {
			continue
		}
		cwd, err := os.Readlink("/proc/" + ent.Name() + "/cwd")
		if pgid, gerr := syscall.Getpgid(pid); err == nil && gerr == nil && pgid == pid && strings.HasPrefix(cwd, releases+"/") {
			out = append(out, pid)
		}
	}
	slices.Sort(out)
	return out
}
