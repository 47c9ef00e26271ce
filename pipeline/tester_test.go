package pipeline

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/immunity-app/immunity/deployers"
)

// testRelease packs a release holding one shell script, bin/itest, for CommandTester.
func testRelease(t *testing.T, dir, script string) deployers.Release {
	t.Helper()
	src := filepath.Join(dir, "src")
	os.MkdirAll(filepath.Join(src, "bin"), 0o755)
	if err := os.WriteFile(filepath.Join(src, "bin", "itest"), []byte("#!/bin/sh\n"+script+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	art := filepath.Join(dir, "rel.tar.gz")
	f, err := os.Create(art)
	if err != nil {
		t.Fatal(err)
	}
	if err := deployers.Pack(src, []string{"bin"}, f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	sum, _ := deployers.FileChecksum(art)
	return deployers.Release{App: "papi", SHA: "abc1234", Artifact: art, Checksum: sum}
}

// readPid waits for a pid written (with its newline) to file.
func readPid(t *testing.T, file string, within time.Duration) int {
	t.Helper()
	for deadline := time.Now().Add(within); ; time.Sleep(20 * time.Millisecond) {
		if b, err := os.ReadFile(file); err == nil && strings.HasSuffix(string(b), "\n") {
			var pid int
			fmt.Sscan(string(b), &pid)
			t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
			return pid
		}
		if time.Now().After(deadline) {
			t.Fatalf("no pid in %s after %v", file, within)
		}
	}
}

// running: the process runs (a zombie nobody reaped yet is dead).
func running(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	_, rest, _ := strings.Cut(string(b), ") ")
	return rest != "" && rest[0] != 'Z'
}

func gone(t *testing.T, pid int, what string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); running(pid); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s (pid %d) is still running", what, pid)
		}
	}
}

// A test command that timed out takes what it started with it: a test runner's child
// left running would go on hitting the host after the verdict.
func TestATimedOutTestCommandTakesItsChildrenWithIt(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	t.Parallel()
	dir := t.TempDir()
	pidfile := filepath.Join(dir, "child.pid")
	rel := testRelease(t, dir, `sleep 60 & echo $! > "$PIDFILE"; wait`)
	h := deployers.Host{App: "papi", Region: "prod3", Name: "host1", URL: "http://127.0.0.1:1"}
	tests := deployers.Tests{Command: []string{"bin/itest"}, Env: map[string]string{"PIDFILE": pidfile}, Timeout: time.Second}
	_, err := CommandTester{Dir: dir}.Test(context.Background(), rel, h, tests)
	if err == nil || !strings.Contains(err.Error(), "timed out after 1s") {
		t.Fatalf("Test = %v; want a timeout", err)
	}
	gone(t, readPid(t, pidfile, time.Second), "the test command's child")
}

// The test command dies with the server that runs it (this test binary again, killed
// with SIGKILL while the tests run): the next server runs the tests again from the
// store's record, and a test command nobody waits for must not go on meanwhile.
func TestTestCommandDiesWithTheServer(t *testing.T) {
	if dir := os.Getenv("IMMUNITY_TEST_TESTER_HELPER"); dir != "" {
		rel := testRelease(t, dir, `echo $$ > "$PIDFILE"; exec sleep 60`)
		h := deployers.Host{App: "papi", Region: "prod3", Name: "host1", URL: "http://127.0.0.1:1"}
		tests := deployers.Tests{Command: []string{"bin/itest"}, Env: map[string]string{"PIDFILE": filepath.Join(dir, "tests.pid")}, Timeout: time.Minute}
		CommandTester{Dir: dir}.Test(context.Background(), rel, h, tests)
		return
	}
	if runtime.GOOS != "linux" {
		t.Skip("only Linux kills a command when its parent dies")
	}
	t.Parallel()
	dir := t.TempDir()
	helper := exec.Command(os.Args[0], "-test.run=^TestTestCommandDiesWithTheServer$")
	helper.Env = append(os.Environ(), "IMMUNITY_TEST_TESTER_HELPER="+dir)
	var out strings.Builder
	helper.Stdout, helper.Stderr = &out, &out
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			t.Logf("the server's output:\n%s", out.String())
		}
	}()
	pid := readPid(t, filepath.Join(dir, "tests.pid"), 30*time.Second)
	helper.Process.Kill()
	helper.Wait()
	gone(t, pid, "the test command, after its server was killed,")
}
