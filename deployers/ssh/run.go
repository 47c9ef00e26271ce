package ssh

import (
	"context"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/immunity-app/immunity/deployers"
)

// runScript runs an argv in a folder of BASE with an environment. Args: the folder
// (quoted); then the already-quoted `env NAME=value... argv` line.
const runScript = `cd %s && exec %s`

// Run runs argv on h in BASE/current over the pooled connection, with env added to its
// environment (for example the region's tests when they run on the host). Output goes to
// stdout and stderr; a non-zero exit is an error carrying the tail of stderr.
func (d *Deployer) Run(ctx context.Context, h deployers.Host, argv []string, env map[string]string, stdout, stderr io.Writer) error {
	if err := d.runIn(ctx, h, "current", argv, env, stdout, stderr); err != nil {
		return fmt.Errorf("run %s on %s: %w", strings.Join(argv, " "), h, err)
	}
	return nil
}

// runIn runs argv in BASE/sub.
func (d *Deployer) runIn(ctx context.Context, h deployers.Host, sub string, argv []string, env map[string]string, stdout, stderr io.Writer) error {
	if len(argv) == 0 {
		return fmt.Errorf("empty command")
	}
	_, t, err := d.target(h)
	if err != nil {
		return err
	}
	words, err := envArgs(env)
	if err != nil {
		return err
	}
	line, err := shellJoin(append(append([]string{"env"}, words...), argv...))
	if err != nil {
		return err
	}
	dir, err := script("%s", path.Join(h.Base, sub))
	if err != nil {
		return err
	}
	return d.pool.run(ctx, t, command{script: fmt.Sprintf(runScript, dir, line), stdout: stdout, stderr: stderr})
}
