package ssh

import (
	"context"
	"fmt"

	"github.com/immunity-app/immunity/deployers"
)

// switchScript marks the release as the most recently used (for pruning), points
// `previous` at the old release and renames a fresh symlink over `current` (rename is
// atomic). Exit 64: the release is not on the host. Args: base, sha.
const switchScript = `set -e
cd %[1]s
if [ ! -f releases/%[2]s/.immunity-release ]; then
	echo "immunity: release %[2]s is not on the host" >&2
	exit 64
fi
touch releases/%[2]s/.immunity-release
cur=$(readlink current 2>/dev/null || true)
name=${cur%%/}
if [ "${name##*/}" != %[2]s ]; then
	if [ -n "$cur" ]; then
		ln -sfn "$cur" .previous.tmp
		mv -fT .previous.tmp previous
	fi
	ln -sfn releases/%[2]s .current.tmp
	mv -fT .current.tmp current
fi
`

// restartTail runs the restart argv in the new release; its words are quoted by the caller.
const restartTail = `set +e
(cd current && exec %s)
rc=$?
set -e
if [ $rc -ne 0 ]; then
	echo "immunity: restart command exited $rc" >&2
	exit 66
fi
`

// pruneBody keeps the releases `current` and `previous` point at ($cur, $prev, compared
// by name however the links are written), then the most recently uploaded or activated
// others until keep releases remain, and deletes the rest. A release is first renamed
// aside to releases/.<sha>.<pid>.trash, a name no reader takes for a release (the glob
// releases/* skips it, and no release name starts with a dot), and only then deleted, so
// a removal cut part-way (a kill, a reboot) never leaves a half release that still looks
// complete. Trash left by such a cut is deleted first. It runs in BASE; it lists by time
// only when there are more than keep releases; it exits 1 when something could not be
// deleted. Args: keep.
const pruneBody = `slots=%s
rc=0
if [ -d releases ]; then
	cur=${cur%%/}; cur=${cur##*/}
	prev=${prev%%/}; prev=${prev##*/}
	for t in releases/.*.trash; do
		[ ! -e "$t" ] || rm -rf "$t" || rc=1
	done
	set -- releases/*/.immunity-release
	if [ "$#" -gt "$slots" ]; then
		[ -z "$cur" ] || slots=$((slots-1))
		[ -z "$prev" ] || [ "$prev" = "$cur" ] || slots=$((slots-1))
		IFS='
'
		for m in $(ls -1t releases/*/.immunity-release 2>/dev/null); do
			d=${m%%/.immunity-release}
			n=${d#releases/}
			if [ "$n" = "$cur" ] || [ "$n" = "$prev" ]; then
				continue
			fi
			if [ "$slots" -gt 0 ]; then
				slots=$((slots-1))
				continue
			fi
			t="releases/.$n.$$.trash"
			if mv -T "$d" "$t"; then
				rm -rf "$t" || rc=1
			else
				rc=1
			fi
		done
	fi
fi
exit $rc
`

// pruneScript is pruneBody after reading the links. Args: base, keep.
const pruneScript = `cd %s || exit 0
cur=$(readlink current 2>/dev/null || true)
prev=$(readlink previous 2>/dev/null || true)
` + pruneBody

// Activate switches h to release sha, restarts the app, waits for the health check and
// prunes old releases. The switch, the restart and the prune are each a command of their
// own, each begun only once the context's fence (deployers.WithFence) lets it: a server
// paused in the middle of Activate that lost the app meanwhile changes nothing more.
func (d *Deployer) Activate(ctx context.Context, h deployers.Host, sha string) error {
	if err := d.activate(ctx, h, sha); err != nil {
		return fmt.Errorf("activate %s@%s on %s: %w", h.App, short(sha), h, err)
	}
	return nil
}

func (d *Deployer) activate(ctx context.Context, h deployers.Host, sha string) error {
	if err := checkName(sha); err != nil {
		return err
	}
	s, t, err := d.target(h)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()
	if err := d.switchTo(ctx, h, t, sha); err != nil {
		return err
	}
	if err := d.restartOn(ctx, h, s, t, true); err != nil {
		return err
	}
	d.log.InfoContext(ctx, "release active", "app", h.App, "region", h.Region, "host", h.Name, "sha", sha)
	return nil
}

// Switch points h's current link at release sha (previous at the old one); it runs no
// restart command.
func (d *Deployer) Switch(ctx context.Context, h deployers.Host, sha string) error {
	if err := d.switchOnly(ctx, h, sha); err != nil {
		return fmt.Errorf("switch %s@%s on %s: %w", h.App, short(sha), h, err)
	}
	return nil
}

func (d *Deployer) switchOnly(ctx context.Context, h deployers.Host, sha string) error {
	if err := checkName(sha); err != nil {
		return err
	}
	s, t, err := d.target(h)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()
	return d.switchTo(ctx, h, t, sha)
}

// switchTo runs the switch on the host, once the fence lets it.
func (d *Deployer) switchTo(ctx context.Context, h deployers.Host, t target, sha string) error {
	sw, err := script(switchScript, h.Base, sha)
	if err != nil {
		return err
	}
	err = d.pool.run(ctx, t, command{script: sw, change: true})
	switch {
	case exitCode(err) == 64:
		return deployers.ErrNotFound
	case err != nil && !refusedByFence(err):
		return fmt.Errorf("switch current: %w", err)
	}
	if err == nil {
		d.log.InfoContext(ctx, "switched current", "app", h.App, "region", h.Region, "host", h.Name, "sha", sha)
	}
	return err
}

// restartScript checks that current points at a complete release and puts its name in
// IMMUNITY_RELEASE; restartTail and pruneBody may follow. Args: base.
const restartScript = `set -e
cd %s
cur=$(readlink current 2>/dev/null || true)
prev=$(readlink previous 2>/dev/null || true)
if [ -z "$cur" ] || [ ! -f "$cur/.immunity-release" ]; then
	echo "immunity: current points at no complete release" >&2
	exit 64
fi
IMMUNITY_RELEASE=${cur%%/}
IMMUNITY_RELEASE=${IMMUNITY_RELEASE##*/}
export IMMUNITY_RELEASE
`

// Restart runs the region's restart command in h's current release, waits for the
// health check and prunes old releases; the restart and the prune each begin only once
// the context's fence lets them.
func (d *Deployer) Restart(ctx context.Context, h deployers.Host) error {
	if err := d.restart(ctx, h); err != nil {
		return fmt.Errorf("restart %s on %s: %w", h.App, h, err)
	}
	return nil
}

func (d *Deployer) restart(ctx context.Context, h deployers.Host) error {
	s, t, err := d.target(h)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()
	return d.restartOn(ctx, h, s, t, false)
}

// restartOn runs the restart command in the host's current release (once the fence lets
// it), waits for the health check, then prunes old releases (once the fence lets it). A
// prune that fails is only logged: the release is live and healthy, and the next prune
// tries again; a prune the fence refuses answers the fence's error. Right after a switch
// (switched), a region with no restart command skips the command that would only check
// that current points at a complete release: the switch just did.
func (d *Deployer) restartOn(ctx context.Context, h deployers.Host, s Settings, t target, switched bool) error {
	if err := d.runRestart(ctx, h, s, t, switched); err != nil {
		return err
	}
	if len(s.HealthCommand) > 0 || (s.HealthPath != "" && h.URL != "") {
		if err := d.waitHealthy(ctx, h, s, t); err != nil {
			return err
		}
	}
	prune, err := script(pruneScript, h.Base, fmt.Sprint(s.Keep))
	if err != nil {
		return err
	}
	if err := d.pool.run(ctx, t, command{script: prune, change: true}); err != nil {
		if refusedByFence(err) {
			return err
		}
		d.log.WarnContext(ctx, "prune old releases", "app", h.App, "region", h.Region, "host", h.Name, "err", err)
	}
	return nil
}

// runRestart runs the region's restart command in the host's current release, once the
// fence lets it (see restartOn for switched).
func (d *Deployer) runRestart(ctx context.Context, h deployers.Host, s Settings, t target, switched bool) error {
	if switched && len(s.Restart) == 0 {
		return nil
	}
	sc, err := script(restartScript, h.Base)
	if err != nil {
		return err
	}
	if len(s.Restart) > 0 {
		env, err := envArgs(map[string]string{"IMMUNITY_BASE": h.Base, "IMMUNITY_HOST": h.Name})
		if err != nil {
			return err
		}
		line, err := shellJoin(append(append([]string{"env"}, env...), s.Restart...))
		if err != nil {
			return fmt.Errorf("restart command: %w", err)
		}
		sc += fmt.Sprintf(restartTail, line)
	}
	err = d.pool.run(ctx, t, command{script: sc, change: true})
	switch exitCode(err) {
	case 64:
		return deployers.ErrNotFound
	case 66:
		return fmt.Errorf("restart: %w", err)
	}
	return err
}
