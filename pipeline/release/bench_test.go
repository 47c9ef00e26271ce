package release

import (
	"context"
	"testing"
)

// BenchmarkBuildPapi measures one release of papi from scratch (checkout, go build with a
// warm GOCACHE, pack, checksum): go test -run=^$ -bench=BuildPapi ./pipeline/release
func BenchmarkBuildPapi(b *testing.B) {
	r, shas := papiRepo(b)
	for b.Loop() {
		s := Spec{App: "papi", RepoPath: r.dir, SHA: shas[0], Command: papiBuild, Artifacts: []string{"bin"}, Dir: b.TempDir()}
		if _, err := Build(context.Background(), s); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReuseRelease measures a Build of a commit whose artifact exists (a restart).
func BenchmarkReuseRelease(b *testing.B) {
	r, shas := papiRepo(b)
	s := Spec{App: "papi", RepoPath: r.dir, SHA: shas[0], Command: papiBuild, Artifacts: []string{"bin"}, Dir: b.TempDir()}
	if _, err := Build(context.Background(), s); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := Build(context.Background(), s); err != nil {
			b.Fatal(err)
		}
	}
}
