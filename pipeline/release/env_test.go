package release

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Not parallel: it sets environment variables.
func TestBuildEnvKeepsToolsDropsSecretsAddsSpecEnv(t *testing.T) {
	t.Setenv("IMMUNITY_GITHUB_WEBHOOK_SECRET", "s3cret")
	t.Setenv("SLACK_BOT_TOKEN", "xoxb-1")
	t.Setenv("GOCACHE_TEST_MARKER", "kept") // GO* is kept
	r := newRepo(t)
	sha := r.commit("env")
	s := r.spec(sha, "env.txt")
	s.Command = []string{"sh", "-c", "env > env.txt"}
	s.Env = map[string]string{"GREETING": "hi there", "PATH": "/usr/bin:/bin"}
	env := strings.Split(readFile(t, filepath.Join(unpack(t, mustBuild(t, s)), "env.txt")), "\n")
	for _, want := range []string{"GREETING=hi there", "PATH=/usr/bin:/bin", "GOCACHE_TEST_MARKER=kept"} {
		if !slices.Contains(env, want) {
			t.Errorf("build env lacks %s: %q", want, env)
		}
	}
	for _, kv := range env {
		if strings.Contains(kv, "s3cret") || strings.Contains(kv, "xoxb-1") {
			t.Errorf("a secret reached the build: %s", kv)
		}
	}
}

func TestBuildEnvFilter(t *testing.T) {
	t.Parallel()
	got := buildEnv([]string{"PATH=/bin", "HOME=/root", "GOCACHE=/c", "LC_ALL=C", "AWS_SECRET_ACCESS_KEY=x", "IMMUNITY_SLACK_BOT_TOKEN=y", "PATHX=1"},
		map[string]string{"CGO_ENABLED": "0", "HOME": "/home/b"})
	want := []string{"CGO_ENABLED=0", "GOCACHE=/c", "HOME=/home/b", "LC_ALL=C", "PATH=/bin"}
	if !slices.Equal(got, want) {
		t.Errorf("buildEnv = %q, want %q", got, want)
	}
}

func TestSafePath(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]bool{
		"a/b.go": true, "$(x)": true, "../x": false, "/etc/passwd": false, "a/../../x": false,
		".git/config": false, "sub/.GIT/hooks/pre-commit": false, "": false,
	} {
		if got := safePath(name); got != want {
			t.Errorf("safePath(%q) = %v, want %v", name, got, want)
		}
	}
}
