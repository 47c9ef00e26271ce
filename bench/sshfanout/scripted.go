package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// q quotes a word for /bin/sh.
func q(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// sshOpts are the OpenSSH options of every scripted command: this bench's key and
// known_hosts only, strict host key checking, the fastest cipher, no user config.
func (b *bench) sshOpts() string {
	return strings.Join([]string{"-F /dev/null", "-i", q(b.env.KeyFile), "-o", q("UserKnownHostsFile=" + b.env.KnownHosts),
		"-o StrictHostKeyChecking=yes -o BatchMode=yes -o LogLevel=ERROR -c aes128-gcm@openssh.com"}, " ")
}

func (b *bench) login(i int) string { return q(b.env.User + "@" + b.ips[i]) }

// shell runs a generated /bin/sh script and times it.
// Its CPU time (with every ssh, scp and cat it waited for) is recorded as the client's.
func (b *bench) shell(ctx context.Context, script string) (time.Duration, error) {
	return b.measure(func() error {
		cmd := exec.CommandContext(ctx, "/bin/sh", "-c", script)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%w: %s", err, strings.TrimSpace(string(out)))
		}
		b.clientCPU = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		return nil
	})
}

// raw streams the artifact to every host at once into /dev/null: logins and encryption only.
func (b *bench) raw(ctx context.Context) (time.Duration, error) {
	var s strings.Builder
	for i := range b.hosts {
		fmt.Fprintf(&s, "cat %s | ssh %s -p %d %s 'cat >/dev/null' &\n", q(b.rel.Artifact), b.sshOpts(), b.ports[i], b.login(i))
	}
	s.WriteString("wait\n")
	return b.shell(ctx, s.String())
}

// scripted is what a user scripts today: scp the artifact, then ssh to check its sha256,
// unpack it and switch the current symlink; parallel hosts at a time through xargs -P.
func (b *bench) scripted(ctx context.Context, parallel int) (time.Duration, error) {
	root := filepath.Join(b.dir, fmt.Sprintf("scripted-%d", parallel))
	defer os.RemoveAll(root)
	one := filepath.Join(b.dir, "deploy-one.sh")
	remote := fmt.Sprintf(`echo %s | sha256sum -c --quiet && mkdir -p releases/%s && tar -xzf release.tgz -C releases/%s && rm release.tgz && ln -sfn releases/%s current.tmp && mv -T current.tmp current`,
		q(b.rel.Checksum+"  release.tgz"), b.rel.SHA, b.rel.SHA, b.rel.SHA)
	// The remote line is double-quoted so that the base folder ($3) is filled in here;
	// the bench's folders hold no quotes or $.
	oneScript := fmt.Sprintf("set -e\nscp -q %s -P \"$2\" %s \"$1:$3/release.tgz\"\nssh %s -p \"$2\" \"$1\" \"cd '$3' && %s\"\n",
		b.sshOpts(), q(b.rel.Artifact), b.sshOpts(), remote)
	if err := os.WriteFile(one, []byte(oneScript), 0o644); err != nil {
		return 0, err
	}
	var list strings.Builder
	for i, h := range b.hosts {
		base := filepath.Join(root, h.Name)
		if err := os.MkdirAll(base, 0o755); err != nil {
			return 0, err
		}
		fmt.Fprintf(&list, "%s@%s %d %s\n", b.env.User, b.ips[i], b.ports[i], base)
	}
	listFile := filepath.Join(b.dir, "hosts.txt")
	if err := os.WriteFile(listFile, []byte(list.String()), 0o644); err != nil {
		return 0, err
	}
	return b.shell(ctx, fmt.Sprintf("xargs -P %d -L 1 sh %s < %s", parallel, q(one), q(listFile)))
}

// scriptedRollback switches every host of the deployer's scenario to the small release
// with one fresh ssh login per host.
func (b *bench) scriptedRollback(ctx context.Context, parallel int) (time.Duration, error) {
	var list strings.Builder
	for i, h := range b.hosts {
		remote := fmt.Sprintf("cd %s && ln -sfn releases/%s current.tmp && mv -T current.tmp current", q(h.Base), b.small.SHA)
		fmt.Fprintf(&list, "ssh %s -p %d %s %s\n", b.sshOpts(), b.ports[i], b.login(i), q(remote))
	}
	listFile := filepath.Join(b.dir, "rollback.txt")
	if err := os.WriteFile(listFile, []byte(list.String()), 0o644); err != nil {
		return 0, err
	}
	d, err := b.shell(ctx, fmt.Sprintf("xargs -P %d -d '\\n' -n 1 sh -c < %s", parallel, q(listFile)))
	if err != nil {
		return 0, err
	}
	return d, b.checkLive(b.small.SHA)
}
