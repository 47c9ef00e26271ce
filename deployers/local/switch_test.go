package local

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/immunity-app/immunity/deployers"
)

// TestReadersNeverMissCurrent switches current 100 times while readers resolve it and read
// a file through it: an atomic rename of the link means no reader ever finds it missing.
func TestReadersNeverMissCurrent(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	shas := []string{"aaaaaaa", "bbbbbbb"}
	for _, sha := range shas {
		dir := releasePath(base, sha)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, content := range map[string]string{"VERSION": sha, markerFile: "sum"} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	d := New(Options{Run: []string{"bin/app"}})
	h := deployers.Host{Region: "r", Name: "h", Base: base}
	if err := d.switchTo(context.Background(), h, shas[0]); err != nil {
		t.Fatal(err)
	}

	var stop atomic.Bool
	var reads, failures atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				if err := readThroughCurrent(base); err != nil {
					failures.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				}
				reads.Add(1)
			}
		}()
	}
	// 100 switches, each after the readers made progress, so reads overlap the switches.
	for i := range 100 {
		for seen := reads.Load(); reads.Load() < seen+2; {
			runtime.Gosched()
		}
		if err := d.switchTo(context.Background(), h, shas[(i+1)%2]); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	if n := failures.Load(); n > 0 {
		t.Fatalf("%d of %d reads through current failed during switches, first: %v", n, reads.Load(), firstErr.Load())
	}
	st, err := readState(base)
	if err != nil || st.Current == "" || st.Previous == "" || st.Current == st.Previous {
		t.Fatalf("state after switching = %+v, %v", st, err)
	}
}

func readThroughCurrent(base string) error {
	dir, err := filepath.EvalSymlinks(filepath.Join(base, currentLink))
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(dir, "VERSION")); err != nil {
		return err
	}
	_, err = os.ReadFile(filepath.Join(base, currentLink, "VERSION"))
	return err
}

func TestKeepSet(t *testing.T) {
	newest := []string{"e", "d", "c", "b", "a"}
	cases := []struct {
		cur, prev string
		keep      int
		want      []string
	}{
		{"e", "d", 3, []string{"e", "d", "c"}},
		{"a", "b", 3, []string{"a", "b", "e"}},
		{"a", "b", 1, []string{"a", "b"}},
		{"c", "", 2, []string{"c", "e"}},
		{"", "", 2, []string{"e", "d"}},
	}
	for _, c := range cases {
		got := keepSet(newest, c.cur, c.prev, c.keep)
		if len(got) != len(c.want) {
			t.Errorf("keepSet(cur %s, prev %s, keep %d) = %v, want %v", c.cur, c.prev, c.keep, got, c.want)
			continue
		}
		for _, sha := range c.want {
			if !got[sha] {
				t.Errorf("keepSet(cur %s, prev %s, keep %d) = %v, want %v", c.cur, c.prev, c.keep, got, c.want)
			}
		}
	}
}

// TestPruneNeverTakesTheLinkedReleases: the releases current and previous point at are
// kept by a prune whatever they hold, even a folder whose marker is missing or empty,
// while complete releases beyond Keep go.
func TestPruneNeverTakesTheLinkedReleases(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	for sha, marker := range map[string]string{"live": "", "back": "\n", "a": "sum", "b": "sum", "c": "sum"} {
		dir := releasePath(base, sha)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if sha != "live" {
			if err := os.WriteFile(filepath.Join(dir, markerFile), []byte(marker), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for name, sha := range map[string]string{currentLink: "live", prevLink: "back"} {
		if err := switchLink(base, name, sha); err != nil {
			t.Fatal(err)
		}
	}
	d := New(Options{Run: []string{"bin/app"}, Keep: 2})
	if err := d.prune(context.Background(), deployers.Host{Region: "r", Name: "h", Base: base}); err != nil {
		t.Fatal(err)
	}
	for _, sha := range []string{"live", "back"} {
		if _, err := os.Stat(releasePath(base, sha)); err != nil {
			t.Errorf("release %s, which a link points at, was pruned: %v", sha, err)
		}
	}
	rels, err := listReleases(base)
	if err != nil || len(rels) != 2 {
		t.Errorf("complete releases after the prune: %v, %v; want Keep (2) of a, b, c", rels, err)
	}
}
