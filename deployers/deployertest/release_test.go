package deployertest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/immunity-app/immunity/deployers"
)

func TestMain(m *testing.M) { Main(m) }

func TestNewReleaseUnpacksToARunnableRelease(t *testing.T) {
	rel := NewRelease(t, "fail-unhealthy-x")
	if rel.SHA != SHA("fail-unhealthy-x") || len(rel.SHA) != 40 || rel.App != AppName {
		t.Fatalf("release = %+v", rel)
	}
	if again := NewRelease(t, "fail-unhealthy-x"); again != rel {
		t.Fatalf("the same version packed twice differently: %+v vs %+v", again, rel)
	}
	if other := NewRelease(t, "v1"); other.Checksum == rel.Checksum {
		t.Fatal("two versions share a checksum")
	}
	f, err := os.Open(rel.Artifact)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dir := t.TempDir()
	if err := deployers.Unpack(f, dir); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"VERSION": "fail-unhealthy-x\n", "mode": "unhealthy\n", "bin/restart": restartScript} {
		if got, err := os.ReadFile(filepath.Join(dir, name)); err != nil || string(got) != want {
			t.Errorf("%s = %q, %v; want %q", name, got, err, want)
		}
	}
	for _, name := range []string{"bin/testapp", "bin/restart"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.Mode()&0o111 == 0 {
			t.Errorf("%s is not executable: %v %v", name, fi, err)
		}
	}
}
