package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestCLIFindsTheSocketAndUsesPersonalTokens runs `immunity serve` and the CLI: on the
// server's machine the CLI reaches it through data_dir's socket as the OS user (who
// makes a token, shown once); elsewhere the token's owner is who acts; a revoked token
// acts no more.
func TestCLIFindsTheSocketAndUsesPersonalTokens(t *testing.T) {
	dir, err := os.MkdirTemp("", "imm") // short: a socket path has at most 100 bytes
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	t.Chdir(dir)
	papiRepo(t, filepath.Join(dir, "papi.git"))
	listen := freeAddr(t)
	os.WriteFile("immunity.yml", []byte(fmt.Sprintf(`server: {listen: %s, data_dir: data}
apps:
  - name: papi
    repo: {path: papi.git}
    build: {command: [true], artifacts: [bin]}
    run: {command: [true]}
    regions:
      - {name: prod3, production: true, hosts: [{name: host1, port: %d}]}
`, listen, freePort(t))), 0o644)
	for _, k := range []string{"IMMUNITY_SOCKET", "IMMUNITY_SERVER", "IMMUNITY_TOKEN", "IMMUNITY_LISTEN"} {
		t.Setenv(k, "")
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan int, 1)
	var serveErr bytes.Buffer
	go func() { served <- run(ctx, []string{"serve"}, &bytes.Buffer{}, &serveErr) }()
	defer func() { cancel(); <-served }()
	sock := filepath.Join(dir, "data", "immunity.sock")
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no socket at %s; serve said %s", sock, serveErr.String())
		}
	}
	cli := func(args ...string) (int, string) {
		var out, errb bytes.Buffer
		code := run(context.Background(), args, &out, &errb)
		return code, out.String() + errb.String()
	}
	code, out := cli("token", "create", "ada", "--role", "member")
	tok := regexp.MustCompile(`imm_[A-Za-z0-9_-]{43}`).FindString(out)
	if code != 0 || tok == "" || !strings.Contains(out, "shown only this once") {
		t.Fatalf("token create: %d %q", code, out)
	}
	if code, out := cli("token", "create", "ada"); code == 0 || !strings.Contains(out, "already exists") {
		t.Fatalf("second token ada: %d %q", code, out)
	}
	// A freeze through the CLI: shown in status, refused when it names no time, lifted.
	if code, out := cli("freeze", "papi", "prod3", "until", "2h", "launch", "week"); code != 0 || !strings.Contains(out, "froze papi prod3 until") {
		t.Fatalf("freeze over the socket: %d %q", code, out)
	}
	if code, out := cli("status", "papi"); code != 0 || !regexp.MustCompile(`prod3 .*frozen \(papi prod3\) until .* by \S+: launch week`).MatchString(out) {
		t.Fatalf("status of a frozen region: %d %q", code, out)
	}
	if code, out := cli("freeze", "papi", "prod3", "until", "soon", "x"); code == 0 || !strings.Contains(out, "TIME: expected a duration such as 2h or 3d") {
		t.Fatalf("freeze until soon: %d %q", code, out)
	}
	if code, out := cli("unfreeze", "papi"); code != 0 || !strings.Contains(out, "unfroze papi") {
		t.Fatalf("unfreeze over the socket: %d %q", code, out)
	}
	if code, out := cli("lock", "papi", "prod3", "by", "the", "operator"); code != 0 {
		t.Fatalf("lock over the socket: %d %q", code, out)
	}
	// Away from the socket: the URL, anonymous, then with the token.
	t.Setenv("IMMUNITY_SERVER", "http://"+listen)
	if code, out := cli("unlock", "papi", "prod3"); code == 0 || !strings.Contains(out, "verified identity") {
		t.Fatalf("anonymous unlock: %d %q", code, out)
	}
	t.Setenv("IMMUNITY_TOKEN", tok)
	if code, out := cli("unlock", "papi", "prod3"); code == 0 || !strings.Contains(out, "only they can unlock it") {
		t.Fatalf("ada unlocks the operator's lock: %d %q", code, out)
	}
	if code, out := cli("unlock", "papi", "prod3", "--force"); code != 0 || !strings.Contains(out, "unlocked") {
		t.Fatalf("ada unlocks with --force: %d %q", code, out)
	}
	if code, out := cli("token", "list"); code == 0 || !strings.Contains(out, "managing tokens needs the server's local socket or an admin token (403 Forbidden") {
		t.Fatalf("a member lists tokens: %d %q; want the server's reason", code, out)
	}
	t.Setenv("IMMUNITY_SERVER", listen) // no scheme
	if code, out := cli("status"); code == 0 || !strings.Contains(out, "expected the server's URL, such as http://10.0.3.2:3102") {
		t.Fatalf("IMMUNITY_SERVER without http://: %d %q", code, out)
	}
	t.Setenv("IMMUNITY_SERVER", "http://"+listen)
	t.Setenv("IMMUNITY_SERVER", "")
	t.Setenv("IMMUNITY_TOKEN", "")
	if code, out := cli("token", "revoke", "ada"); code != 0 {
		t.Fatalf("revoke: %d %q", code, out)
	}
	code, out = cli("token", "list")
	if code != 0 || !regexp.MustCompile(`(?m)^ada\s+member\s+\S+\s+local:\S+\s+\S+\s+20\d\d-`).MatchString(out) {
		t.Fatalf("token list: %d\n%s", code, out)
	}
	t.Setenv("IMMUNITY_SERVER", "http://"+listen)
	t.Setenv("IMMUNITY_TOKEN", tok)
	if code, out := cli("lock", "papi", "prod3"); code == 0 || !strings.Contains(out, "not a token in force") {
		t.Fatalf("revoked token: %d %q", code, out)
	}
}
