package ssh

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/immunity-app/immunity/deployers"
)

// A cut connection does not stop its remote command at once: the host notices later, and
// the upload on it then reads the end of its input, fails its checksum and cleans up. A
// retry that began meanwhile, over a new connection, must finish with a complete release.
func TestUploadRetriedWhileACutAttemptStillRunsOnTheHost(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1, Settings{})
	ctx, h := context.Background(), f.hosts[0]
	rel := release(t, "7777777bbbb", 8<<20)

	// The first attempt's connection stalls after 256 KiB of its upload.
	first := &cutDialer{}
	first.budget.Store(-1)
	first.stall(256 << 10)
	d1 := New(Options{Settings: func(deployers.Host) Settings { return f.settings }, Dial: first.DialContext})
	t.Cleanup(func() { d1.Close() })
	firstErr := make(chan error, 1)
	go func() { firstErr <- d1.Upload(ctx, h, rel) }()
	firstFile := waitUpload(t, h, 128<<10)

	// The retry's connection stalls after 2 MiB, its upload well past the first one's.
	f.dial.stall(2 << 20)
	retryErr := make(chan error, 1)
	go func() { retryErr <- f.d.Upload(ctx, h, rel) }()
	waitUpload(t, h, 1<<20)

	// The first connection is cut; its remote command reads the end of its input, fails
	// its checksum and cleans up while the retry is still receiving.
	first.cut()
	if err := <-firstErr; err == nil {
		t.Fatal("upload over a cut connection succeeded")
	}
	waitFor(t, "the cut attempt's remote command to clean up", func() bool {
		_, err := os.Stat(filepath.Dir(firstFile))
		return os.IsNotExist(err)
	})

	f.dial.resume()
	if err := <-retryErr; err != nil {
		t.Fatalf("retry while a cut attempt cleaned up on the host: %v", err)
	}
	checkComplete(t, h, rel)
	mustAll(t, []error{f.d.Activate(ctx, h, rel.SHA)})
	if got := liveVersion(t, h); got != rel.SHA {
		t.Errorf("live after retry: %q, want %q", got, rel.SHA)
	}
}

// An attempt that stalled mid-upload and resumes after a retry already put the release in
// place and made it live succeeds, and leaves the live folder as it is.
func TestUploadStalledAttemptFinishingAfterTheRetryLeavesTheLiveReleaseAlone(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1, Settings{})
	ctx, h := context.Background(), f.hosts[0]
	rel := release(t, "7777777cccc", 8<<20)

	slow := &cutDialer{}
	slow.budget.Store(-1)
	slow.stall(1 << 20)
	d1 := New(Options{Settings: func(deployers.Host) Settings { return f.settings }, Dial: slow.DialContext})
	t.Cleanup(func() { d1.Close() })
	slowErr := make(chan error, 1)
	go func() { slowErr <- d1.Upload(ctx, h, rel) }()
	waitUpload(t, h, 512<<10)

	mustAll(t, f.deploy(ctx, f.hosts, rel)) // the retry uploads and activates
	dir := filepath.Join(h.Base, "releases", rel.SHA)
	live, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}

	slow.resume()
	if err := <-slowErr; err != nil {
		t.Errorf("stalled attempt finishing after the retry: %v", err)
	}
	now, err := os.Stat(dir)
	if err != nil || !os.SameFile(live, now) {
		t.Errorf("the live release folder was replaced by a late attempt: %v", err)
	}
	checkComplete(t, h, rel)
	if got := liveVersion(t, h); got != rel.SHA {
		t.Errorf("live: %q, want %q", got, rel.SHA)
	}
}

// Several attempts of one release at once all succeed and leave one complete copy.
func TestUploadConcurrentAttemptsAllSucceed(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1, Settings{})
	ctx, h := context.Background(), f.hosts[0]
	rel := release(t, "7777777dddd", 2<<20)
	ds := make([]*Deployer, 3)
	for i := range ds {
		ds[i] = New(Options{Settings: func(deployers.Host) Settings { return f.settings }})
		t.Cleanup(func() { ds[i].Close() })
	}
	errs := make([]error, len(ds))
	done := make(chan int)
	for i, d := range ds {
		go func() { errs[i] = d.Upload(ctx, h, rel); done <- i }()
	}
	for range ds {
		<-done
	}
	mustAll(t, errs)
	checkComplete(t, h, rel)
}

// A folder under the release's name that is not a complete copy of it (no marker, or
// another artifact's) is replaced.
func TestUploadReplacesAnIncompleteOrDifferentCopy(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1, Settings{})
	ctx, h := context.Background(), f.hosts[0]
	rel := release(t, "7777777eeee", 1000)
	dir := filepath.Join(h.Base, "releases", rel.SHA)
	for _, m := range []string{"", "0000000000000000000000000000000000000000000000000000000000000000\n"} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		write(t, filepath.Join(dir, "stray"), "x")
		if m != "" {
			write(t, filepath.Join(dir, marker), m)
		}
		if err := f.d.Upload(ctx, h, rel); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(dir, "stray")); !os.IsNotExist(err) {
			t.Errorf("marker %q: the old folder's file survived the upload: %v", m, err)
		}
		checkComplete(t, h, rel)
		os.RemoveAll(dir)
	}
}

// waitUpload waits until an upload in progress on h has received at least n bytes and
// returns its file.
func waitUpload(t *testing.T, h deployers.Host, n int64) string {
	t.Helper()
	var file string
	waitFor(t, fmt.Sprintf("an upload of %d bytes on the host", n), func() bool {
		for _, p := range uploadFiles(h) {
			if fi, err := os.Stat(p); err == nil && fi.Size() >= n {
				file = p
				return true
			}
		}
		return false
	})
	return file
}

// uploadFiles lists the files of uploads in progress in h's releases folder.
func uploadFiles(h deployers.Host) []string {
	root := filepath.Join(h.Base, "releases")
	entries, _ := os.ReadDir(root)
	var out []string
	for _, e := range entries {
		p := filepath.Join(root, e.Name(), ".immunity-upload")
		if _, err := os.Stat(p); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// checkComplete checks that rel is on h whole: its marker, its files as packed, and no
// other folder (an upload in progress or one set aside) left in releases.
func checkComplete(t *testing.T, h deployers.Host, rel deployers.Release) {
	t.Helper()
	dir := filepath.Join(h.Base, "releases", rel.SHA)
	if b, err := os.ReadFile(filepath.Join(dir, marker)); err != nil || string(b) != rel.Checksum+"\n" {
		t.Errorf("marker of %s: %q, %v; want its checksum", rel.SHA, b, err)
	}
	src := filepath.Join(filepath.Dir(rel.Artifact), "src")
	for _, name := range []string{"version", "blob", "bin/run.sh"} {
		want, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			t.Fatal(err)
		}
		if got, err := os.ReadFile(filepath.Join(dir, name)); err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s of release %s on the host: %d bytes, %v; want the %d bytes packed", name, rel.SHA, len(got), err, len(want))
		}
	}
	if fi, err := os.Stat(dir); err == nil && fi.Mode().Perm() != 0o755 {
		t.Errorf("release folder mode %v, want 0755 (others may run the app)", fi.Mode().Perm())
	}
	entries, err := os.ReadDir(filepath.Join(h.Base, "releases"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{rel.SHA}) {
		t.Errorf("releases folder holds %q, want only %q", names, rel.SHA)
	}
}

// waitFor polls cond until it holds; it fails the test after two minutes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("gave up waiting for %s", what)
		case <-time.After(5 * time.Millisecond):
		}
	}
}
