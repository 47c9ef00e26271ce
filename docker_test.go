package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestDockerfileBuildsTheREADMEsBinaryAsANonRootUser reads the Dockerfile (no container
// engine runs in the tests): its build runs the README's build command with every one of
// its flags, the final stage names a user that is not root, and its HEALTHCHECK is
// `immunity healthcheck`.
func TestDockerfileBuildsTheREADMEsBinaryAsANonRootUser(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	docker, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	want := regexp.MustCompile(`(?m)^\s*(CGO_ENABLED=0 go build .*) -o immunity \.`).FindStringSubmatch(string(readme))
	if want == nil {
		t.Fatal("README.md has no `CGO_ENABLED=0 go build ... -o immunity .` line")
	}
	got := regexp.MustCompile(`(?m)^RUN (CGO_ENABLED=0 go build .*) -o /immunity \.$`).FindStringSubmatch(string(docker))
	if got == nil {
		t.Fatal("Dockerfile has no `RUN CGO_ENABLED=0 go build ... -o /immunity .` line")
	}
	readmeArgs, dockerArgs := buildArgs(want[1]), buildArgs(got[1])
	for flag, v := range readmeArgs {
		dv, ok := dockerArgs[flag]
		if !ok || !strings.HasPrefix(dv, v) {
			t.Errorf("Dockerfile builds with %s=%q, README with %q", flag, dv, v)
		}
	}
	for _, f := range []string{"CGO_ENABLED", "-trimpath", "-ldflags"} {
		if _, ok := readmeArgs[f]; !ok {
			t.Errorf("README's build command lacks %s", f)
		}
	}
	if v := readmeArgs["-ldflags"]; !strings.Contains(v, "-s -w") {
		t.Errorf("README's -ldflags = %q, want -s -w", v)
	}

	stages := strings.Split(string(docker), "\nFROM ")
	final := stages[len(stages)-1]
	users := regexp.MustCompile(`(?m)^USER\s+(\S+)`).FindAllStringSubmatch(final, -1)
	if len(users) == 0 {
		t.Fatal("the runtime stage names no USER: it would run as root")
	}
	if u := strings.Split(users[len(users)-1][1], ":")[0]; u == "root" || u == "0" {
		t.Fatalf("the runtime stage runs as %q", u)
	}
	if !regexp.MustCompile(`(?m)^HEALTHCHECK .*CMD \["immunity", "healthcheck"\]`).MatchString(final) {
		t.Error("the runtime stage has no HEALTHCHECK running immunity healthcheck")
	}
	if _, err := os.Stat(".dockerignore"); err != nil {
		t.Error("no .dockerignore: the whole work tree (.git, data) would be sent to the build")
	}
}

// buildArgs splits `CGO_ENABLED=0 go build -trimpath -ldflags "-s -w ..."` into flags
// and values ("" for a flag without one).
func buildArgs(cmd string) map[string]string {
	out := map[string]string{}
	words := regexp.MustCompile(`"[^"]*"|\S+`).FindAllString(cmd, -1)
	for i := 0; i < len(words); i++ {
		w := words[i]
		switch {
		case strings.HasPrefix(w, "CGO_ENABLED="):
			out["CGO_ENABLED"] = strings.TrimPrefix(w, "CGO_ENABLED=")
		case w == "-ldflags" && i+1 < len(words):
			out[w] = strings.Trim(words[i+1], `"`)
			i++
		case strings.HasPrefix(w, "-"):
			out[w] = ""
		}
	}
	return out
}

func TestVersionPrintsVersionAndCommit(t *testing.T) {
	defer func(v, c string) { buildVersion, buildCommit = v, c }(buildVersion, buildCommit)
	buildVersion, buildCommit = "v1.2.3", "0123abc"
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"version"}, &out, &errb); code != 0 || out.String() != "immunity v1.2.3 (commit 0123abc)\n" {
		t.Fatalf("exit %d, %q %q", code, out.String(), errb.String())
	}
}

// TestHealthcheckAsksReadyz runs `immunity healthcheck` against a real server: ready
// answers exit 0, a server that is not ready (or absent) exits 1.
func TestHealthcheckAsksReadyz(t *testing.T) {
	ready := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" || !ready {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ready")
	}))
	defer srv.Close()
	t.Setenv("IMMUNITY_LISTEN", strings.Replace(strings.TrimPrefix(srv.URL, "http://"), "127.0.0.1", "0.0.0.0", 1))
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"healthcheck"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "503") {
		t.Fatalf("not ready: exit %d, %q", code, errb.String())
	}
	ready = true
	if code := run(context.Background(), []string{"healthcheck"}, &out, &errb); code != 0 {
		t.Fatalf("ready: exit %d, %q", code, errb.String())
	}
	srv.Close()
	if code := run(context.Background(), []string{"healthcheck"}, &out, &errb); code != 1 {
		t.Fatalf("no server: exit %d", code)
	}
}
