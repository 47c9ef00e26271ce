package ssh

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"strings"

	"github.com/immunity-app/immunity/deployers"
)

// stateScript prints the targets of current and previous, then the markers of complete
// releases, newest first. Args: base.
const stateScript = `cd %s 2>/dev/null || exit 0
printf 'current %%s\n' "$(readlink current 2>/dev/null || true)"
printf 'previous %%s\n' "$(readlink previous 2>/dev/null || true)"
ls -1t releases/*/.immunity-release 2>/dev/null || true
`

// State reports the releases on h and which are current and previous.
func (d *Deployer) State(ctx context.Context, h deployers.Host) (deployers.HostState, error) {
	st, err := d.state(ctx, h)
	if err != nil {
		return st, fmt.Errorf("state of %s: %w", h, err)
	}
	return st, nil
}

func (d *Deployer) state(ctx context.Context, h deployers.Host) (deployers.HostState, error) {
	var st deployers.HostState
	s, t, err := d.target(h)
	if err != nil {
		return st, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()
	cmd, err := script(stateScript, h.Base)
	if err != nil {
		return st, err
	}
	var out bytes.Buffer
	if err := d.pool.run(ctx, t, command{script: cmd, stdout: &out}); err != nil {
		return st, err
	}
	return parseState(out.String()), nil
}

func parseState(out string) deployers.HostState {
	var st deployers.HostState
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "current "):
			st.Current = releaseOf(strings.TrimPrefix(line, "current "))
		case strings.HasPrefix(line, "previous "):
			st.Previous = releaseOf(strings.TrimPrefix(line, "previous "))
		case strings.HasSuffix(line, "/"+marker):
			st.Releases = append(st.Releases, releaseOf(strings.TrimSuffix(line, "/"+marker)))
		}
	}
	return st
}

// releaseOf turns a link target "releases/<sha>" into "<sha>".
func releaseOf(target string) string {
	target = strings.TrimSuffix(strings.TrimSpace(target), "/")
	if i := strings.LastIndex(target, "/"); i >= 0 {
		return target[i+1:]
	}
	return target
}
