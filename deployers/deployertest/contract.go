package deployertest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/immunity-app/immunity/deployers"
)

// Run runs the contract tests against the harness's deployer, as parallel subtests.
func Run(t *testing.T, h Harness) {
	if h.Deployer == nil || h.NewHost == nil || h.Keep < 2 {
		t.Fatal("deployertest.Harness needs a Deployer, NewHost and Keep >= 2")
	}
	tests := []struct {
		name string
		fn   func(context.Context, *testing.T, Harness)
	}{
		{"UploadActivate", testUploadActivate},
		{"UploadTwiceIsNoop", testUploadTwice},
		{"SecondReleaseAndRollback", testRollback},
		{"SwitchThenRestart", testSwitchThenRestart},
		{"KeepPruning", testKeepPruning},
		{"PruneCutPartWay", testPruneCutPartWay},
		{"PruneKeepsTheLinkedReleases", testPruneKeepsTheLinkedReleases},
		{"CrashBetweenUploadAndSwitch", testCrashLeftovers},
		{"ActivateMissing", testActivateMissing},
		{"FailingHealthCheck", testFailingHealth},
		{"ConcurrentHosts", testConcurrentHosts},
		{"Healthy", testHealthy},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			tc.fn(ctx, t, h)
		})
	}
}

func testUploadActivate(ctx context.Context, t *testing.T, h Harness) {
	host := h.NewHost(t)
	rel := h.release(t, "v1")
	if err := h.Deployer.Upload(ctx, host, rel); err != nil {
		t.Fatalf("upload: %v", err)
	}
	st := h.state(ctx, t, host)
	if st.Current != "" || !slices.Equal(st.Releases, []string{rel.SHA}) {
		t.Fatalf("state after upload = %+v, want no current and releases [%s]", st, rel.SHA)
	}
	if err := h.Deployer.Activate(ctx, host, rel.SHA); err != nil {
		t.Fatalf("activate: %v", err)
	}
	if got := h.link(t, host, "current"); got != rel.SHA {
		t.Fatalf("current -> %q, want %s", got, rel.SHA)
	}
	if st := h.state(ctx, t, host); st.Current != rel.SHA || st.Previous != "" {
		t.Fatalf("state after activate = %+v, want current %s and no previous", st, rel.SHA)
	}
	a := mustServe(ctx, t, host, rel, "v1")
	if filepath.Base(a.WD) != rel.SHA {
		t.Errorf("app runs in %s, want the release folder releases/%s itself (resolved, not through current)", a.WD, rel.SHA)
	}
}

func testUploadTwice(ctx context.Context, t *testing.T, h Harness) {
	host := h.NewHost(t)
	rel := h.release(t, "v1")
	if err := h.Deployer.Upload(ctx, host, rel); err != nil {
		t.Fatalf("upload: %v", err)
	}
	file := h.path(host, filepath.Join("releases", rel.SHA, "VERSION"))
	before, err := os.Stat(file)
	if err != nil {
		t.Fatalf("uploaded release: %v", err)
	}
	for i := range 2 {
		if err := h.Deployer.Upload(ctx, host, rel); err != nil {
			t.Fatalf("upload again (%d): %v", i, err)
		}
		after, err := os.Stat(file)
		if err != nil {
			t.Fatalf("release after a second upload: %v", err)
		}
		if !os.SameFile(before, after) || !before.ModTime().Equal(after.ModTime()) {
			t.Fatalf("a second upload unpacked the release again (VERSION replaced)")
		}
		if i == 0 {
			if err := h.Deployer.Activate(ctx, host, rel.SHA); err != nil {
				t.Fatalf("activate: %v", err)
			}
		}
	}
	mustServe(ctx, t, host, rel, "v1")
}

func testRollback(ctx context.Context, t *testing.T, h Harness) {
	host := h.NewHost(t)
	v1, v2 := h.release(t, "v1"), h.release(t, "v2")
	h.deploy(ctx, t, host, v1)
	h.deploy(ctx, t, host, v2)
	if cur, prev := h.link(t, host, "current"), h.link(t, host, "previous"); cur != v2.SHA || prev != v1.SHA {
		t.Fatalf("after v2: current -> %s previous -> %s, want %s and %s", cur, prev, v2.SHA, v1.SHA)
	}
	mustServe(ctx, t, host, v2, "v2")

	st := h.state(ctx, t, host)
	if err := h.Deployer.Activate(ctx, host, st.Previous); err != nil {
		t.Fatalf("rollback: %v", err)
	}
	if cur, prev := h.link(t, host, "current"), h.link(t, host, "previous"); cur != v1.SHA || prev != v2.SHA {
		t.Fatalf("after rollback: current -> %s previous -> %s, want %s and %s", cur, prev, v1.SHA, v2.SHA)
	}
	mustServe(ctx, t, host, v1, "v1")
}

// testSwitchThenRestart checks Activate's two halves, as the engine calls them: Switch
// moves the links and leaves the running app alone (twice is once), Restart starts the
// current release's app (and may be repeated).
func testSwitchThenRestart(ctx context.Context, t *testing.T, h Harness) {
	host := h.NewHost(t)
	v1, v2 := h.release(t, "v1"), h.release(t, "v2")
	h.deploy(ctx, t, host, v1)
	if err := h.Deployer.Upload(ctx, host, v2); err != nil {
		t.Fatalf("upload: %v", err)
	}
	for i := range 2 {
		if err := h.Deployer.Switch(ctx, host, v2.SHA); err != nil {
			t.Fatalf("switch (%d): %v", i, err)
		}
		if st := h.state(ctx, t, host); st.Current != v2.SHA || st.Previous != v1.SHA {
			t.Fatalf("state after switch (%d) = %+v, want current %s previous %s", i, st, v2.SHA, v1.SHA)
		}
		mustServe(ctx, t, host, v1, "v1") // not restarted yet
	}
	first := 0
	for i := range 2 {
		if err := h.Deployer.Restart(ctx, host); err != nil {
			t.Fatalf("restart (%d): %v", i, err)
		}
		a := mustServe(ctx, t, host, v2, "v2")
		if i == 0 {
			first = a.PID
		} else if a.PID == first {
			t.Errorf("a second restart left pid %d running", a.PID)
		}
	}
	if err := h.Deployer.Healthy(ctx, host); err != nil {
		t.Fatalf("healthy after restart: %v", err)
	}
	if err := h.Deployer.Switch(ctx, host, "0000000000000000000000000000000000000000"); !errors.Is(err, deployers.ErrNotFound) {
		t.Fatalf("switch to a release not on the host: %v, want ErrNotFound", err)
	}
}

// testKeepPruning activates Keep+1 releases, then uploads Keep newer ones and rolls back,
// so the live and previous releases are older than releases that get pruned.
func testKeepPruning(ctx context.Context, t *testing.T, h Harness) {
	host := h.NewHost(t)
	var recent []string // SHAs, most recently uploaded or activated first
	touch := func(sha string) {
		recent = slices.DeleteFunc(recent, func(s string) bool { return s == sha })
		recent = slices.Insert(recent, 0, sha)
	}
	var all []deployers.Release
	for i := 1; i <= h.Keep+1; i++ {
		rel := h.release(t, "keep"+string(rune('a'+i)))
		all = append(all, rel)
		h.deploy(ctx, t, host, rel)
		touch(rel.SHA)
	}
	checkKept(ctx, t, h, host, all, recent[:h.Keep])

	live, prev := all[len(all)-1], all[len(all)-2]
	for i := 1; i <= h.Keep; i++ {
		rel := h.release(t, "keep-new"+string(rune('a'+i)))
		all = append(all, rel)
		if err := h.Deployer.Upload(ctx, host, rel); err != nil {
			t.Fatalf("upload: %v", err)
		}
		touch(rel.SHA)
	}
	if err := h.Deployer.Activate(ctx, host, prev.SHA); err != nil {
		t.Fatalf("rollback to %s: %v", prev.SHA, err)
	}
	touch(prev.SHA)
	want := []string{prev.SHA}
	for _, sha := range recent[1:] {
		if len(want) < h.Keep-1 && sha != live.SHA {
			want = append(want, sha)
		}
	}
	want = append(want, live.SHA) // the new previous: older than the uploads, kept anyway
	slices.SortStableFunc(want, func(a, b string) int { return slices.Index(recent, a) - slices.Index(recent, b) })
	checkKept(ctx, t, h, host, all, want)
	if st := h.state(ctx, t, host); st.Current != prev.SHA || st.Previous != live.SHA {
		t.Fatalf("state = %+v, want current %s previous %s", st, prev.SHA, live.SHA)
	}
}

func checkKept(ctx context.Context, t *testing.T, h Harness, host deployers.Host, all []deployers.Release, want []string) {
	t.Helper()
	st := h.state(ctx, t, host)
	if !slices.Equal(st.Releases, want) {
		t.Fatalf("releases kept (newest first) = %v, want %v", st.Releases, want)
	}
	for _, rel := range all {
		kept := slices.Contains(want, rel.SHA)
		if got := h.exists(t, host, filepath.Join("releases", rel.SHA)); got != kept {
			t.Fatalf("releases/%s exists = %v, want %v", rel.SHA, got, kept)
		}
	}
}

// testCrashLeftovers simulates a crash during an upload: a half-written temporary folder
// and a release folder that never got completed.
func testCrashLeftovers(ctx context.Context, t *testing.T, h Harness) {
	host := h.NewHost(t)
	v1, v2 := h.release(t, "v1"), h.release(t, "v2")
	h.deploy(ctx, t, host, v1)

	tmp := h.path(host, filepath.Join("releases", v2.SHA+".tmp-x", "bin"))
	half := h.path(host, filepath.Join("releases", v2.SHA))
	mustWrite(t, filepath.Join(tmp, "testapp"), "half an ELF")
	mustWrite(t, filepath.Join(half, "VERSION"), "garbage\n")

	st := h.state(ctx, t, host)
	if st.Current != v1.SHA || !slices.Equal(st.Releases, []string{v1.SHA}) {
		t.Fatalf("state with crash leftovers = %+v, want current %s and only that release", st, v1.SHA)
	}
	if err := h.Deployer.Activate(ctx, host, v2.SHA); !errors.Is(err, deployers.ErrNotFound) {
		t.Fatalf("activate an incomplete release: err = %v, want ErrNotFound", err)
	}
	if got := h.link(t, host, "current"); got != v1.SHA {
		t.Fatalf("current -> %s after a refused activate, want %s", got, v1.SHA)
	}
	mustServe(ctx, t, host, v1, "v1")

	h.deploy(ctx, t, host, v2)
	mustServe(ctx, t, host, v2, "v2")
	if st := h.state(ctx, t, host); st.Current != v2.SHA || st.Previous != v1.SHA {
		t.Fatalf("state after retry = %+v", st)
	}
}

func mustWrite(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func testActivateMissing(ctx context.Context, t *testing.T, h Harness) {
	empty := h.NewHost(t)
	missing := SHA("never-uploaded")
	if err := h.Deployer.Activate(ctx, empty, missing); !errors.Is(err, deployers.ErrNotFound) {
		t.Fatalf("activate on an empty host: err = %v, want ErrNotFound", err)
	}
	if h.exists(t, empty, "current") {
		t.Fatal("a refused activate created current")
	}

	host := h.NewHost(t)
	v1 := h.release(t, "v1")
	h.deploy(ctx, t, host, v1)
	before := h.state(ctx, t, host)
	served := mustServe(ctx, t, host, v1, "v1")
	if err := h.Deployer.Activate(ctx, host, missing); !errors.Is(err, deployers.ErrNotFound) {
		t.Fatalf("activate a missing release: err = %v, want ErrNotFound", err)
	}
	after := h.state(ctx, t, host)
	if after.Current != before.Current || after.Previous != before.Previous || !slices.Equal(after.Releases, before.Releases) {
		t.Fatalf("state changed by a refused activate: before %+v after %+v", before, after)
	}
	if a := mustServe(ctx, t, host, v1, "v1"); a.PID != served.PID {
		t.Fatalf("a refused activate restarted the app (pid %d -> %d)", served.PID, a.PID)
	}
}

func testFailingHealth(ctx context.Context, t *testing.T, h Harness) {
	host := h.NewHost(t)
	v1, bad := h.release(t, "v1"), h.release(t, "fail-exit")
	h.deploy(ctx, t, host, v1)
	if err := h.Deployer.Upload(ctx, host, bad); err != nil {
		t.Fatalf("upload: %v", err)
	}
	err := h.Deployer.Activate(ctx, host, bad.SHA)
	if err == nil {
		t.Fatal("activate a release whose app exits at start: no error")
	}
	if errors.Is(err, deployers.ErrNotFound) {
		t.Fatalf("activate a failing release: err = %v, want a health failure, not ErrNotFound", err)
	}
	if !strings.Contains(err.Error(), "refusing to start") {
		t.Fatalf("activate a failing release: err = %v, want the app log tail in it", err)
	}
	if err := h.Deployer.Activate(ctx, host, v1.SHA); err != nil {
		t.Fatalf("roll back after a failed activate: %v", err)
	}
	mustServe(ctx, t, host, v1, "v1")
}

func testConcurrentHosts(ctx context.Context, t *testing.T, h Harness) {
	v1, v2 := h.release(t, "v1"), h.release(t, "v2")
	hosts := make([]deployers.Host, 4)
	for i := range hosts {
		hosts[i] = h.NewHost(t)
	}
	var wg sync.WaitGroup
	errs := make([]error, len(hosts))
	for i, host := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, rel := range []deployers.Release{v1, v2} {
				if err := h.Deployer.Upload(ctx, host, rel); err != nil {
					errs[i] = err
					return
				}
				if err := h.Deployer.Activate(ctx, host, rel.SHA); err != nil {
					errs[i] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	for i, host := range hosts {
		if errs[i] != nil {
			t.Fatalf("deploy to %s: %v", host, errs[i])
		}
		mustServe(ctx, t, host, v2, "v2")
		if got := h.link(t, host, "previous"); got != v1.SHA {
			t.Fatalf("%s: previous -> %s, want %s", host, got, v1.SHA)
		}
	}
}

func testHealthy(ctx context.Context, t *testing.T, h Harness) {
	host := h.NewHost(t)
	short, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := h.Deployer.Healthy(short, host); err == nil {
		t.Fatal("Healthy on a host that runs nothing: no error")
	}
	v1 := h.release(t, "v1")
	h.deploy(ctx, t, host, v1)
	served := mustServe(ctx, t, host, v1, "v1")
	if err := h.Deployer.Healthy(ctx, host); err != nil {
		t.Fatalf("Healthy after a deploy: %v", err)
	}
	if a := mustServe(ctx, t, host, v1, "v1"); a.PID != served.PID {
		t.Fatalf("Healthy restarted the app (pid %d -> %d)", served.PID, a.PID)
	}
}
