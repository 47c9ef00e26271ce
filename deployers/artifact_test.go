package deployers

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
)

// A program unpacked while other goroutines start processes can be run at once: the
// unpacked file's write descriptor never leaks into a child forked meanwhile, which would
// make running it fail with "text file busy" until that child execs.
func TestAnUnpackedProgramRunsWhileOthersStartProcesses(t *testing.T) {
	src := t.TempDir()
	if err := os.MkdirAll(filepath.Join(src, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	script := append([]byte("#!/bin/sh\nexit 0\n"), bytes.Repeat([]byte("# padding\n"), 20000)...)
	if err := os.WriteFile(filepath.Join(src, "bin", "app"), script, 0o755); err != nil {
		t.Fatal(err)
	}
	var art bytes.Buffer
	if err := Pack(src, []string{"bin"}, &art); err != nil {
		t.Fatal(err)
	}

	ctx, stop := context.WithCancel(context.Background())
	var forks sync.WaitGroup
	for range 4 {
		forks.Add(1)
		go func() {
			defer forks.Done()
			for ctx.Err() == nil {
				_ = exec.Command("/bin/true").Run()
			}
		}()
	}
	defer func() { stop(); forks.Wait() }()

	busy := 0
	for i := range 300 {
		dir := filepath.Join(t.TempDir(), "r")
		if err := Unpack(bytes.NewReader(art.Bytes()), dir); err != nil {
			t.Fatal(err)
		}
		if err := exec.Command(filepath.Join(dir, "bin", "app")).Run(); err != nil {
			if errors.Is(err, syscall.ETXTBSY) {
				busy++
				continue
			}
			t.Fatalf("run %d: %v", i, err)
		}
	}
	if busy > 0 {
		t.Fatalf("%d of 300 unpacked programs could not be run: text file busy", busy)
	}
}
