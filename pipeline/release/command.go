package release

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/immunity-app/immunity/internal/proc"
)

// keptEnv are the variables of Immunity's own environment a build sees (names, or
// prefixes ending in "_" or "*"). Everything else, tokens and secrets included, is dropped.
var keptEnv = []string{
	"PATH", "HOME", "USER", "LOGNAME", "TMPDIR", "TZ", "LANG", "LC_*", "TERM",
	"GO*", "CGO_*", "CC", "CXX", "AR", "PKG_CONFIG_PATH",
	"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
	"SSL_CERT_FILE", "SSL_CERT_DIR",
}

// buildEnv is the kept part of environ with extra added (extra wins), sorted.
func buildEnv(environ []string, extra map[string]string) []string {
	vars := map[string]string{}
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if ok && kept(k) {
			vars[k] = v
		}
	}
	for k, v := range extra {
		vars[k] = v
	}
	out := make([]string, 0, len(vars))
	for k, v := range vars {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

func kept(name string) bool {
	for _, k := range keptEnv {
		if p, ok := strings.CutSuffix(k, "*"); ok && strings.HasPrefix(name, p) || k == name {
			return true
		}
	}
	return false
}

// runCommand runs argv (no shell) in dir, its output going to log. On failure the error
// says which command failed and ends with the last lines it printed.
func runCommand(ctx context.Context, dir string, argv []string, env []string, timeout time.Duration, log io.Writer) error {
	if len(argv) == 0 {
		return errors.New("no build command")
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = env
	tail := &tailBuffer{max: 4096}
	out := io.MultiWriter(log, tail)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = 5 * time.Second
	proc.Supervise(cmd)
	err := cmd.Run()
	if err == nil {
		return nil
	}
	name := commandName(argv)
	var exit *exec.ExitError
	switch {
	case ctx.Err() == context.DeadlineExceeded:
		err = fmt.Errorf("%s timed out after %s", name, timeout)
	case ctx.Err() != nil:
		err = fmt.Errorf("%s: %w", name, ctx.Err())
	case errors.As(err, &exit) && exit.Exited():
		err = fmt.Errorf("%s exited %d", name, exit.ExitCode())
	default:
		err = fmt.Errorf("%s: %w", name, err)
	}
	if last := tail.lastLines(10); last != "" {
		return fmt.Errorf("%w: %s", err, last)
	}
	return err
}

// commandName is how errors name a command: "go build", "make", "build.sh".
func commandName(argv []string) string {
	name := filepath.Base(argv[0])
	if len(argv) > 1 && !strings.HasPrefix(argv[1], "-") && !strings.ContainsAny(argv[1], "/. ") {
		name += " " + argv[1]
	}
	return name
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = t.buf[over:]
	}
	return len(p), nil
}

// lastLines returns up to n last non-empty lines, joined by newlines.
func (t *tailBuffer) lastLines(n int) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	lines := bytes.Split(bytes.TrimSpace(t.buf), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}
