package ssh

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/immunity-app/immunity/deployers"
)

// Every change a call makes on a host checks the context's fence right before it begins
// (deployers.WithFence): a server paused in the middle of a call, after the check its call
// began with, goes on after another server took the app over and changes nothing more.
// Here a server's pause is a real wait in the call (its connection being dialled, a health
// check, an upload whose connection stalls), the other server is another Deployer with
// connections of its own, and the lease is lost for every check made after the pause.

var errLost = errors.New("lease lost")

// lease is the fence of the paused server's work: it lets effects happen until lost.
type lease struct{ lost atomic.Bool }

func (l *lease) check() error {
	if l.lost.Load() {
		return errLost
	}
	return nil
}

// lostWhen is a fence that lets effects happen until the call reaches a check where
// reached holds. There the server pauses right before the check: meanwhile is what
// another server does while it is paused, and that check and every later one refuse.
func lostWhen(reached func() bool, meanwhile func()) func() error {
	var mu sync.Mutex
	lost := false
	return func() error {
		mu.Lock()
		defer mu.Unlock()
		if !lost && reached() {
			lost = true
			meanwhile()
		}
		if lost {
			return errLost
		}
		return nil
	}
}

// restartsLogged is the restart command of these tests: it appends the release it
// restarts to BASE/restarts.
var restartsLogged = []string{"sh", "-c", `printf '%s\n' "$IMMUNITY_RELEASE" >> ../../restarts`}

func restarts(t *testing.T, h deployers.Host) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(h.Base, "restarts"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return strings.Fields(string(b))
}

// newHeldDeployer is another server's deployer for f's hosts whose dials wait for
// release.
func newHeldDeployer(t *testing.T, f *fixture) (*Deployer, *heldDialer) {
	held := &heldDialer{started: make(chan struct{}, 8), release: make(chan struct{})}
	d := New(Options{Settings: func(deployers.Host) Settings { return f.settings }, Dial: held.DialContext})
	t.Cleanup(func() { d.Close() })
	return d, held
}

func waitDial(t *testing.T, held *heldDialer) {
	t.Helper()
	select {
	case <-held.started:
	case <-time.After(2 * time.Minute):
		t.Fatal("the paused server's call never dialled")
	}
}

func uploadAll(ctx context.Context, t *testing.T, d *Deployer, h deployers.Host, rels ...deployers.Release) {
	t.Helper()
	for _, rel := range rels {
		if err := d.Upload(ctx, h, rel); err != nil {
			t.Fatal(err)
		}
	}
}

// TestASwitchInFlightStopsAtItsFence: a server paused in a switch while its connection
// was being dialled goes on after another server switched the host: it leaves current
// where the other put it.
func TestASwitchInFlightStopsAtItsFence(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1, Settings{})
	ctx, h := context.Background(), f.hosts[0]
	v1, v2, v3 := release(t, "1111111f1f1", 100), release(t, "2222222f2f2", 100), release(t, "3333333f3f3", 100)
	mustAll(t, f.deploy(ctx, f.hosts, v1))
	uploadAll(ctx, t, f.d, h, v2, v3)

	paused, held := newHeldDeployer(t, f)
	var l lease
	done := make(chan error, 1)
	go func() { done <- paused.Switch(deployers.WithFence(ctx, l.check), h, v2.SHA) }()
	waitDial(t, held)
	if err := f.d.Switch(ctx, h, v3.SHA); err != nil { // the other server, meanwhile
		t.Fatal(err)
	}
	l.lost.Store(true)
	close(held.release)
	if err := <-done; !errors.Is(err, errLost) {
		t.Errorf("the switch that went on after the pause: %v; want the fence's error", err)
	}
	if got := liveVersion(t, h); got != v3.SHA {
		t.Errorf("current is %s after the paused switch went on; want %s, as the other server switched it", got, v3.SHA)
	}
}

// TestARestartInFlightStopsAtItsFence: a server paused in a restart while its connection
// was being dialled goes on after another server deployed the host: it runs no restart
// command.
func TestARestartInFlightStopsAtItsFence(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1, Settings{Restart: restartsLogged})
	ctx, h := context.Background(), f.hosts[0]
	v1, v2 := release(t, "1111111f1f2", 100), release(t, "2222222f2f3", 100)
	mustAll(t, f.deploy(ctx, f.hosts, v1))

	paused, held := newHeldDeployer(t, f)
	var l lease
	done := make(chan error, 1)
	go func() { done <- paused.Restart(deployers.WithFence(ctx, l.check), h) }()
	waitDial(t, held)
	mustAll(t, f.deploy(ctx, f.hosts, v2)) // the other server, meanwhile
	l.lost.Store(true)
	close(held.release)
	if err := <-done; !errors.Is(err, errLost) {
		t.Errorf("the restart that went on after the pause: %v; want the fence's error", err)
	}
	if got, want := restarts(t, h), []string{v1.SHA, v2.SHA}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("restarts run on the host: %v; want %v (the other server's only after the pause)", got, want)
	}
}

// TestAnActivateInFlightStopsAtItsFenceBeforeTheRestart: a server paused in Activate
// after its switch, before the restart, goes on after another server deployed the host:
// it restarts nothing, and current stays on the other server's release.
func TestAnActivateInFlightStopsAtItsFenceBeforeTheRestart(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1, Settings{Restart: restartsLogged})
	ctx, h := context.Background(), f.hosts[0]
	v1, v2, v3 := release(t, "1111111f1f3", 100), release(t, "2222222f2f4", 100), release(t, "3333333f3f5", 100)
	mustAll(t, f.deploy(ctx, f.hosts, v1))
	uploadAll(ctx, t, f.d, h, v2, v3)

	paused := New(Options{Settings: func(deployers.Host) Settings { return f.settings }})
	t.Cleanup(func() { paused.Close() })
	switched := func() bool { return liveVersion(t, h) == v2.SHA }
	fence := lostWhen(switched, func() {
		if err := f.d.Activate(ctx, h, v3.SHA); err != nil { // the other server, meanwhile
			t.Errorf("the other server's activate: %v", err)
		}
	})
	if err := paused.Activate(deployers.WithFence(ctx, fence), h, v2.SHA); !errors.Is(err, errLost) {
		t.Errorf("the activate that went on after the pause: %v; want the fence's error", err)
	}
	if got, want := restarts(t, h), []string{v1.SHA, v3.SHA}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("restarts run on the host: %v; want %v (the paused server's switch, then no restart of its own)", got, want)
	}
	if got := liveVersion(t, h); got != v3.SHA {
		t.Errorf("current is %s; want %s, as the other server left it", got, v3.SHA)
	}
}

// TestAPruneAfterAHealthWaitStopsAtItsFence: a server paused while it waited for the
// health check of the release it activated goes on after another server uploaded the
// release it deploys next: its prune does not run, so that release stays on the host.
func TestAPruneAfterAHealthWaitStopsAtItsFence(t *testing.T) {
	t.Parallel()
	var holding atomic.Bool
	asked := make(chan struct{}, 1)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if holding.Load() {
			select {
			case asked <- struct{}{}:
			default:
			}
			http.Error(w, "starting", http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(app.Close)
	f := newFixture(t, 1, Settings{HealthPath: "/healthz", Keep: 2})
	f.hosts[0].URL = app.URL
	ctx, h := context.Background(), f.hosts[0]
	v1, v2, v3 := release(t, "1111111f1f4", 100), release(t, "2222222f2f5", 100), release(t, "3333333f3f6", 100)
	mustAll(t, f.deploy(ctx, f.hosts, v1))
	uploadAll(ctx, t, f.d, h, v2)

	paused := New(Options{Settings: func(deployers.Host) Settings { return f.settings }})
	t.Cleanup(func() { paused.Close() })
	var l lease
	holding.Store(true)
	done := make(chan error, 1)
	go func() { done <- paused.Activate(deployers.WithFence(ctx, l.check), h, v2.SHA) }()
	select { // the paused server waits for its app's health check
	case <-asked:
	case <-time.After(2 * time.Minute):
		t.Fatal("the health check was never asked")
	}
	uploadAll(ctx, t, f.d, h, v3) // the other server, meanwhile
	l.lost.Store(true)
	holding.Store(false)
	if err := <-done; !errors.Is(err, errLost) {
		t.Errorf("the activate that went on after the pause: %v; want the fence's error", err)
	}
	if _, err := os.Stat(filepath.Join(h.Base, "releases", v3.SHA, marker)); err != nil {
		t.Fatalf("the release the other server uploaded was pruned by the paused one: %v", err)
	}
	if err := f.d.Activate(ctx, h, v3.SHA); err != nil {
		t.Errorf("the other server's activate of the release it uploaded: %v", err)
	}
}

// TestAnUploadInFlightStopsAtItsFence: a server whose upload stalled mid-stream goes on
// after it lost the app: the release it sent is not put in place, and its upload folder is
// removed.
func TestAnUploadInFlightStopsAtItsFence(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1, Settings{})
	ctx, h := context.Background(), f.hosts[0]
	v1, v2 := release(t, "1111111f1f5", 100), release(t, "2222222f2f6", 8<<20)
	mustAll(t, f.deploy(ctx, f.hosts, v1))

	var l lease
	f.dial.stall(1 << 20)
	done := make(chan error, 1)
	go func() { done <- f.d.Upload(deployers.WithFence(ctx, l.check), h, v2) }()
	waitUpload(t, h, 512<<10)
	l.lost.Store(true)
	f.dial.resume()
	if err := <-done; !errors.Is(err, errLost) {
		t.Errorf("the upload that went on after the pause: %v; want the fence's error", err)
	}
	entries, err := os.ReadDir(filepath.Join(h.Base, "releases"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.Contains(e.Name(), v2.SHA) {
			t.Errorf("releases/%s is on the host after the upload's fence refused", e.Name())
		}
	}
}
