package release

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestBuildGivesTheCommitsContentNotHead(t *testing.T) {
	t.Parallel()
	r := newRepo(t)
	r.write("msg.txt", "A", 0o644)
	a := r.commit("A")
	r.write("msg.txt", "B", 0o644)
	r.write("only-in-b.txt", "B", 0o644)
	b := r.commit("B")

	relA := mustBuild(t, r.spec(a, "."))
	if relA.SHA != a || relA.App != "demo" || len(relA.Checksum) != 64 {
		t.Fatalf("release %+v, want demo@%s with a sha256", relA, a)
	}
	dir := unpack(t, relA)
	if got := readFile(t, filepath.Join(dir, "msg.txt")); got != "A" {
		t.Errorf("msg.txt of A's release = %q, want A", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "only-in-b.txt")); !os.IsNotExist(err) {
		t.Errorf("A's release holds a file of B (stat: %v)", err)
	}
	relB := mustBuild(t, r.spec(b[:8], "msg.txt"))
	if relB.SHA != b {
		t.Errorf("short SHA %s built %s, want %s", b[:8], relB.SHA, b)
	}
	if got := readFile(t, filepath.Join(unpack(t, relB), "msg.txt")); got != "B" {
		t.Errorf("msg.txt of B's release = %q, want B", got)
	}
}

func TestBuildIsDeterministicAndKeepsModes(t *testing.T) {
	t.Parallel()
	r := newRepo(t)
	r.write("bin/run.sh", "#!/bin/sh\necho hi\n", 0o755)
	r.write("bin/data.txt", "data", 0o644)
	if err := os.Symlink("data.txt", filepath.Join(r.dir, "bin/link")); err != nil {
		t.Fatal(err)
	}
	sha := r.commit("files")

	one := mustBuild(t, r.spec(sha, "bin"))
	two := mustBuild(t, r.spec(sha, "bin")) // another Dir: a build from scratch
	if one.Checksum != two.Checksum {
		t.Errorf("two builds of one commit: checksums %s and %s differ", one.Checksum, two.Checksum)
	}
	dir := unpack(t, one)
	if fi, err := os.Stat(filepath.Join(dir, "bin/run.sh")); err != nil || fi.Mode().Perm()&0o100 == 0 {
		t.Errorf("bin/run.sh is not executable in the release: %v %v", fi, err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "bin/data.txt")); err != nil || fi.Mode().Perm()&0o100 != 0 {
		t.Errorf("bin/data.txt should be a plain file: %v %v", fi, err)
	}
	if target, err := os.Readlink(filepath.Join(dir, "bin/link")); err != nil || target != "data.txt" {
		t.Errorf("bin/link = %q, %v; want a symlink to data.txt", target, err)
	}
}

func TestBuildReusesAFinishedArtifact(t *testing.T) {
	t.Parallel()
	r := newRepo(t)
	r.write("msg.txt", "A", 0o644)
	sha := r.commit("A")
	s := r.spec(sha, "msg.txt")
	first := mustBuild(t, s)

	s.Command = []string{"false"} // would fail if it ran again
	again, err := Build(context.Background(), s)
	if err != nil {
		t.Fatalf("second Build of a finished release rebuilt it: %v", err)
	}
	if again != first {
		t.Errorf("second Build = %+v, want %+v", again, first)
	}
	for _, co := range []string{sha, sha + ".tmp"} {
		if _, err := os.Stat(filepath.Join(s.Dir, "checkouts", "demo", co)); !os.IsNotExist(err) {
			t.Errorf("checkout %s left behind (stat: %v)", co, err)
		}
	}
}

func TestFailingBuildSaysWhyAndLeavesNoArtifact(t *testing.T) {
	t.Parallel()
	r := newRepo(t)
	r.write("go.mod", "module demo\n\ngo 1.26\n", 0o644)
	r.write("main.go", "package main\n\nfunc main() { undefinedThing() }\n", 0o644)
	sha := r.commit("broken")
	s := r.spec(sha, "bin")
	s.Command = []string{"go", "build", "-o", "bin/", "."}
	var log strings.Builder
	s.Log = &log

	_, err := Build(context.Background(), s)
	if err == nil {
		t.Fatal("Build of a broken commit succeeded")
	}
	want := "build demo@" + sha[:7] + ": go build exited 1: "
	if !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), "undefinedThing") {
		t.Errorf("error = %q, want it to start %q and quote the compiler", err, want)
	}
	if !strings.Contains(log.String(), "undefinedThing") {
		t.Errorf("build output not logged: %q", log.String())
	}
	arts, _ := os.ReadDir(filepath.Join(s.Dir, "artifacts", "demo"))
	if len(arts) != 0 {
		t.Errorf("a failed build left %d files in artifacts/", len(arts))
	}
	if _, err := os.Stat(filepath.Join(s.Dir, "checkouts", "demo", sha)); !os.IsNotExist(err) {
		t.Errorf("the checkout was not removed (stat: %v)", err)
	}
}

func TestBuildTimesOut(t *testing.T) {
	t.Parallel()
	r := newRepo(t)
	sha := r.commit("empty")
	s := r.spec(sha, ".")
	s.Command = []string{"sh", "-c", "sleep 60 & sleep 60"}
	s.Timeout = 200 * time.Millisecond
	_, err := Build(context.Background(), s)
	if err == nil || !strings.Contains(err.Error(), "sh timed out after 200ms") {
		t.Fatalf("Build = %v, want a timeout error", err)
	}
}

func TestBuildUnknownOrNonHexSHA(t *testing.T) {
	t.Parallel()
	r := newRepo(t)
	r.write("msg.txt", "A", 0o644)
	r.commit("A")
	for _, sha := range []string{strings.Repeat("ab", 20), "abcdef0", "main", "HEAD", "HEAD~1", "", "--help"} {
		_, err := Build(context.Background(), r.spec(sha, "msg.txt"))
		if !errors.Is(err, ErrUnknownCommit) {
			t.Errorf("Build of %q: err = %v, want ErrUnknownCommit", sha, err)
		}
		if _, err := Lookup(r.dir, sha); !errors.Is(err, ErrUnknownCommit) {
			t.Errorf("Lookup of %q: err = %v, want ErrUnknownCommit", sha, err)
		}
	}
}

func TestBuildRefusesBadAppNames(t *testing.T) {
	t.Parallel()
	r := newRepo(t)
	sha := r.commit("empty")
	for _, app := range []string{"", "..", "../x", "a/b", "/abs"} {
		s := r.spec(sha, ".")
		s.App = app
		if _, err := Build(context.Background(), s); err == nil {
			t.Errorf("Build with app %q succeeded", app)
		}
	}
}

func TestHeadAndLookup(t *testing.T) {
	t.Parallel()
	r := newRepo(t)
	first := r.commit("first\n\nbody")
	second := r.commit("second: the subject\nmore")
	head, err := Head(r.dir, "main")
	if err != nil {
		t.Fatal(err)
	}
	if head.SHA != second || head.Subject != "second: the subject" || head.Author != "Ada Lovelace" || head.Email != "ada@example.com" || head.When.IsZero() {
		t.Errorf("Head = %+v", head)
	}
	c, err := Lookup(r.dir, first[:7])
	if err != nil || c.SHA != first || c.Subject != "first" {
		t.Errorf("Lookup(%s) = %+v, %v", first[:7], c, err)
	}
	if _, err := Head(r.dir, "no-such-branch"); err == nil {
		t.Error("Head of a missing branch succeeded")
	}
	if _, err := Head(t.TempDir(), "main"); err == nil {
		t.Error("Head of a folder that is no repository succeeded")
	}
}

// Commit messages, branch names and file names are data: nothing in them ever runs.
func TestUntrustedTextIsNeverExecuted(t *testing.T) {
	t.Parallel()
	r := newRepo(t)
	canary := filepath.Join(t.TempDir(), "pwned")
	evil := "$(touch " + canary + ") `touch " + canary + "`; touch " + canary
	r.write("$(touch "+filepath.Base(canary)+")", "x", 0o644)
	sha := r.commit(evil + "\n\n" + evil)
	branch := "feat;touch${IFS}" + canary + "|sh"
	r.branch(branch, sha)

	head, err := Head(r.dir, branch)
	if err != nil {
		t.Fatal(err)
	}
	if head.SHA != sha || head.Subject != evil {
		t.Errorf("Head(%q) = %+v, want the commit with its subject verbatim", branch, head)
	}
	s := r.spec(sha, ".")
	s.Command = []string{"ls", "-la"}
	s.Env = map[string]string{"MSG": evil}
	rel := mustBuild(t, s)
	if readFile(t, filepath.Join(unpack(t, rel), "$(touch pwned)")) != "x" {
		t.Error("the file named like a command lost its content")
	}
	if _, err := os.Stat(canary); !os.IsNotExist(err) {
		t.Fatalf("untrusted text was executed: %s exists", canary)
	}
}

func TestConcurrentBuildsOfOneCommitBuildOnce(t *testing.T) {
	t.Parallel()
	r := newRepo(t)
	r.write("msg.txt", "A", 0o644)
	sha := r.commit("A")
	s := r.spec(sha, "msg.txt")
	runs := filepath.Join(t.TempDir(), "runs")
	s.Command = []string{"sh", "-c", `echo run >> "$RUNS"; sleep 0.3`}
	s.Env = map[string]string{"RUNS": runs}
	const builders = 3
	results := make(chan error, builders)
	checksums := make(chan string, builders)
	for range builders {
		go func() {
			rel, err := Build(context.Background(), s)
			checksums <- rel.Checksum
			results <- err
		}()
	}
	for range builders {
		if err := <-results; err != nil {
			t.Fatal(err)
		}
	}
	first := <-checksums
	for range builders - 1 {
		if c := <-checksums; c != first {
			t.Errorf("checksums differ: %s %s", first, c)
		}
	}
	if got := readFile(t, runs); got != "run" {
		t.Errorf("the build command ran %d times, want once", strings.Count(got, "run"))
	}
	// Nothing of the builds is left beside the artifact: no checkout, no lock file.
	if left, _ := os.ReadDir(filepath.Join(s.Dir, "checkouts", s.App)); len(left) != 0 {
		t.Errorf("the builds left %s in checkouts/%s", left[0].Name(), s.App)
	}
}

// TestReposSeesCommitsAddedAfterItOpened keeps one handle open while commits arrive in
// the repository and are packed by git (as pushes and fetches by other processes do).
func TestReposSeesCommitsAddedAfterItOpened(t *testing.T) {
	r := newRepo(t)
	r.write("a.txt", "1", 0o644)
	first := r.commit("first")
	var repos Repos
	if c, err := repos.Head(r.dir, "main"); err != nil || c.SHA != first {
		t.Fatalf("head = %+v, %v; want %s", c, err, first)
	}
	r.write("a.txt", "2", 0o644)
	second := r.commit("second")
	if out, err := exec.Command("git", "-C", r.dir, "repack", "-a", "-d", "-q").CombinedOutput(); err != nil {
		t.Fatalf("git repack: %v %s", err, out)
	}
	if c, err := repos.Lookup(r.dir, second); err != nil || c.Subject != "second" {
		t.Fatalf("lookup of a commit packed after the handle opened = %+v, %v", c, err)
	}
	if c, err := repos.Head(r.dir, "main"); err != nil || c.SHA != second {
		t.Fatalf("head after a new commit = %+v, %v; want %s", c, err, second)
	}
	if _, err := repos.Lookup(r.dir, strings.Repeat("f", 40)); !errors.Is(err, ErrUnknownCommit) {
		t.Fatalf("unknown commit: %v", err)
	}
}

// TestBuildReplacesACheckoutAProcessStillWrites: a server killed in the middle of a build
// leaves its checkout behind, and a process of that build may still be writing into it
// when the next server builds the commit again. The rebuild must not trip over it (a
// removal racing the writer fails with "directory not empty") and must pack only what its
// own build made.
func TestBuildReplacesACheckoutAProcessStillWrites(t *testing.T) {
	t.Parallel()
	r := newRepo(t)
	r.write("msg.txt", "A", 0o644)
	sha := r.commit("A")
	s := r.spec(sha, "msg.txt", "bin")
	s.Command = []string{"sh", "-c", "mkdir -p bin && echo built > bin/out"}
	old := filepath.Join(s.Dir, "checkouts", "demo", sha)
	if err := os.MkdirAll(filepath.Join(old, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	// The straggler: keeps adding files to bin/ of the old checkout (wherever it is moved).
	writer := exec.Command("sh", "-c", `i=0; while :; do : > bin/stale$i 2>/dev/null || exit 0; i=$((i+1)); done`)
	writer.Dir = old
	if err := writer.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { writer.Process.Kill(); writer.Wait() })
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if ents, _ := os.ReadDir(filepath.Join(old, "bin")); len(ents) > 100 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the straggler wrote nothing")
		}
	}
	rel, err := Build(context.Background(), s)
	if err != nil {
		t.Fatalf("rebuild over a checkout still being written: %v", err)
	}
	dir := unpack(t, rel)
	ents, err := os.ReadDir(filepath.Join(dir, "bin"))
	if err != nil || len(ents) != 1 || ents[0].Name() != "out" {
		t.Errorf("the release's bin/ holds %v (%v); want only the rebuild's out", ents, err)
	}
}

// TestBuildCommandDiesWithTheServer runs a build in a process of its own (this test
// binary again, as the server) and SIGKILLs that process while the build command runs:
// the command must die with it rather than go on writing into the checkout.
func TestBuildCommandDiesWithTheServer(t *testing.T) {
	if dir := os.Getenv("IMMUNITY_TEST_BUILD_HELPER"); dir != "" {
		// The server to kill: a build whose command records its pid, then runs a minute.
		r := newRepo(t)
		r.write("msg.txt", "A", 0o644)
		s := r.spec(r.commit("A"), "msg.txt")
		s.Command = []string{"sh", "-c", `echo $$ > "$PIDFILE"; exec sleep 60`}
		s.Env = map[string]string{"PIDFILE": filepath.Join(dir, "build.pid")}
		Build(context.Background(), s)
		return
	}
	if runtime.GOOS != "linux" {
		t.Skip("only Linux kills a command when its parent dies")
	}
	t.Parallel()
	dir := t.TempDir()
	helper := exec.Command(os.Args[0], "-test.run=^TestBuildCommandDiesWithTheServer$")
	helper.Env = append(os.Environ(), "IMMUNITY_TEST_BUILD_HELPER="+dir, "TMPDIR="+dir) // what it leaves goes with dir
	var out strings.Builder
	helper.Stdout, helper.Stderr = &out, &out
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	var pid int
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if b, err := os.ReadFile(filepath.Join(dir, "build.pid")); err == nil && strings.HasSuffix(string(b), "\n") {
			fmt.Sscan(string(b), &pid)
			break
		}
		if time.Now().After(deadline) {
			helper.Process.Kill()
			helper.Wait()
			t.Fatalf("the build never started:\n%s", out.String())
		}
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	helper.Process.Kill()
	helper.Wait()
	for deadline := time.Now().Add(5 * time.Second); alive(pid); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the build command (pid %d) outlived the server that ran it", pid)
		}
	}
}

// alive: the process runs (a zombie nobody reaped yet is dead).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	_, rest, _ := strings.Cut(string(b), ") ")
	return rest != "" && rest[0] != 'Z'
}
