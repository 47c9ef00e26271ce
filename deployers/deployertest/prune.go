package deployertest

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/immunity-app/immunity/deployers"
)

// markerName is the file that completes a release folder, with either deployer.
const markerName = ".immunity-release"

// releaseFiles are the files every release of the test app holds.
var releaseFiles = []string{"VERSION", "bin/restart", "bin/testapp"}

// testPruneCutPartWay: a prune whose removal of a release stops part-way leaves no half
// release that looks complete: none is listed, none can be switched to, and no folder
// under a release's name holds a marker without the release's files. The cut is made by
// a marker that cannot be deleted (immutable for root, in a read-only folder otherwise):
// everything else of that release goes first, the worst a kill or a reboot in the middle
// of the removal can leave. A later upload deletes what the cut left.
func testPruneCutPartWay(ctx context.Context, t *testing.T, h Harness) {
	host := h.NewHost(t)
	var rels []deployers.Release
	for i := 1; i <= h.Keep; i++ {
		rel := h.release(t, fmt.Sprintf("cut%d", i))
		rels = append(rels, rel)
		h.deploy(ctx, t, host, rel)
	}
	pruned := rels[0]
	releases := h.path(host, "releases")
	stickMarker(t, filepath.Join(releases, pruned.SHA))
	next := h.release(t, "cut-next")
	h.deploy(ctx, t, host, next) // its prune takes the oldest release, and is cut
	checkNoHalfRelease(t, releases)
	st := h.state(ctx, t, host)
	if slices.Contains(st.Releases, pruned.SHA) {
		t.Errorf("releases after a cut prune = %v: %s, half removed, is listed", st.Releases, pruned.SHA)
	}
	if err := h.Deployer.Switch(ctx, host, pruned.SHA); !errors.Is(err, deployers.ErrNotFound) {
		t.Errorf("switch to the release a cut prune half removed: %v, want ErrNotFound", err)
	}
	if got := h.link(t, host, "current"); got != next.SHA {
		t.Fatalf("current -> %s, want %s", got, next.SHA)
	}

	unstickMarkers(t, releases)
	if err := h.Deployer.Upload(ctx, host, h.release(t, "cut-after")); err != nil {
		t.Fatalf("upload after a cut prune: %v", err)
	}
	for _, name := range entries(t, releases) {
		if strings.HasPrefix(name, ".") {
			t.Errorf("releases/%s is still there after the next upload", name)
		}
	}
}

// testPruneKeepsTheLinkedReleases: current and previous are kept by a prune however
// their links are written (here absolute paths, as an operator's ln -s may leave them),
// even when newer uploads fill the keep limit.
func testPruneKeepsTheLinkedReleases(ctx context.Context, t *testing.T, h Harness) {
	host := h.NewHost(t)
	old, live := h.release(t, "linked1"), h.release(t, "linked2")
	h.deploy(ctx, t, host, old)
	h.deploy(ctx, t, host, live)
	for name, rel := range map[string]deployers.Release{"current": live, "previous": old} {
		link := h.path(host, name)
		tmp := link + ".relink"
		if err := os.Symlink(filepath.Join(h.path(host, "releases"), rel.SHA), tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, link); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= h.Keep; i++ {
		if err := h.Deployer.Upload(ctx, host, h.release(t, fmt.Sprintf("linked-new%d", i))); err != nil {
			t.Fatalf("upload: %v", err)
		}
	}
	if err := h.Deployer.Restart(ctx, host); err != nil { // restarts, then prunes
		t.Fatalf("restart: %v", err)
	}
	mustServe(ctx, t, host, live, "linked2")
	st := h.state(ctx, t, host)
	for _, rel := range []deployers.Release{live, old} {
		if !slices.Contains(st.Releases, rel.SHA) || !h.exists(t, host, filepath.Join("releases", rel.SHA, markerName)) {
			t.Errorf("release %s, which current or previous points at, was pruned (releases %v)", rel.SHA, st.Releases)
		}
	}
	if len(st.Releases) != h.Keep {
		t.Errorf("%d releases kept, want %d: %v", len(st.Releases), h.Keep, st.Releases)
	}
}

// checkNoHalfRelease fails the test for a folder under a release's name (no dot, no
// upload in progress) that holds a marker but not every file of the release.
func checkNoHalfRelease(t *testing.T, releases string) {
	t.Helper()
	for _, name := range entries(t, releases) {
		if strings.HasPrefix(name, ".") || strings.Contains(name, ".tmp") {
			continue
		}
		dir := filepath.Join(releases, name)
		if _, err := os.Stat(filepath.Join(dir, markerName)); err != nil {
			continue
		}
		for _, f := range releaseFiles {
			if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
				t.Errorf("releases/%s has its marker but not %s: a half release that looks complete", name, f)
			}
		}
	}
}

func entries(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// stickMarker makes the marker of a release folder impossible to delete, wherever the
// folder is renamed to: immutable (chattr +i) when the tests run as root, whom
// permissions do not stop; else the folder is made read-only, so nothing directly in it
// can be deleted. unstickMarkers undoes it; so does the test's cleanup.
func stickMarker(t *testing.T, dir string) {
	t.Helper()
	releases := filepath.Dir(dir)
	t.Cleanup(func() { unstickMarkers(t, releases) })
	if os.Geteuid() != 0 {
		if err := os.Chmod(dir, 0o555); err != nil {
			t.Fatal(err)
		}
		return
	}
	chattr, err := exec.LookPath("chattr")
	if err != nil {
		requireOrSkip(t, "chattr not installed (Debian package e2fsprogs)")
	}
	if out, err := exec.Command(chattr, "+i", filepath.Join(dir, markerName)).CombinedOutput(); err != nil {
		requireOrSkip(t, fmt.Sprintf("chattr +i on the test's folder: %v: %s", err, out))
	}
}

// unstickMarkers undoes stickMarker for every release folder, set aside or not.
func unstickMarkers(t *testing.T, releases string) {
	t.Helper()
	filepath.WalkDir(releases, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() && os.Geteuid() != 0 {
			os.Chmod(path, 0o755)
		}
		if d.Name() == markerName && os.Geteuid() == 0 {
			if chattr, err := exec.LookPath("chattr"); err == nil {
				exec.Command(chattr, "-i", path).Run()
			}
		}
		return nil
	})
}

func requireOrSkip(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("IMMUNITY_TEST_REQUIRE_ALL") == "1" {
		t.Fatalf("%s (IMMUNITY_TEST_REQUIRE_ALL=1)", why)
	}
	t.Skip(why)
}
