package ssh

import (
	"context"
	"fmt"
	"os"

	"github.com/immunity-app/immunity/deployers"
)

// marker is the file inside releases/<sha> that makes a release complete; it holds the
// artifact's sha256.
const marker = ".immunity-release"

// presentScript exits 0 when the release is complete on the host with this checksum.
// Args: base, sha, checksum.
const presentScript = `test "$(cat %[1]s/releases/%[2]s/.immunity-release 2>/dev/null)" = %[3]s`

// uploadScript receives the release on stdin and unpacks it into releases/<sha>.tmp as it
// arrives, hashing the same stream; only when the sha256 matches does it write the marker
// and rename the folder to releases/<sha>. It first deletes uploads abandoned over an hour
// ago. Exit 65 means the checksum did not match.
// Args: base, sha, sha256 of the stream, marker checksum, tar flags (-xzf or -xf).
const uploadScript = `set -e
umask 022
mkdir -p %[1]s/releases
cd %[1]s/releases
sha=%[2]s
want=%[3]s
find . -maxdepth 1 -name '*.tmp' -mmin +60 -exec rm -rf {} + 2>/dev/null || true
rm -rf "$sha.tmp" "$sha.hash.tmp" "$sha.sum.tmp"
mkdir "$sha.tmp"
mkfifo "$sha.hash.tmp"
if command -v openssl >/dev/null 2>&1; then
	openssl dgst -sha256 -r < "$sha.hash.tmp" > "$sha.sum.tmp" &
else
	sha256sum < "$sha.hash.tmp" > "$sha.sum.tmp" &
fi
hasher=$!
set +e
tee "$sha.hash.tmp" | { tar %[5]s - -C "$sha.tmp" --no-same-owner; rc=$?; cat >/dev/null; exit $rc; }
rc=$?
wait $hasher
set -e
got=$(cat "$sha.sum.tmp")
got=${got%%%% *}
rm -f "$sha.hash.tmp" "$sha.sum.tmp"
if [ "$got" != "$want" ]; then
	rm -rf "$sha.tmp"
	echo "immunity: checksum mismatch: got sha256 $got, want $want" >&2
	exit 65
fi
if [ "$rc" -ne 0 ]; then
	rm -rf "$sha.tmp"
	echo "immunity: unpack failed (tar exited $rc)" >&2
	exit 1
fi
printf '%%s\n' %[4]s > "$sha.tmp/.immunity-release"
rm -rf "$sha"
mv "$sha.tmp" "$sha"
`

// Upload places rel under BASE/releases/<sha> on h, unless a verified copy is there.
func (d *Deployer) Upload(ctx context.Context, h deployers.Host, rel deployers.Release) error {
	if err := d.upload(ctx, h, rel); err != nil {
		return fmt.Errorf("upload %s@%s to %s: %w", rel.App, short(rel.SHA), h, err)
	}
	return nil
}

func (d *Deployer) upload(ctx context.Context, h deployers.Host, rel deployers.Release) error {
	if err := checkName(rel.SHA); err != nil {
		return err
	}
	if !checksumRE.MatchString(rel.Checksum) {
		return fmt.Errorf("checksum %q: expected 64 hex digits of sha256", rel.Checksum)
	}
	s, t, err := d.target(h)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()
	present, err := script(presentScript, h.Base, rel.SHA, rel.Checksum)
	if err != nil {
		return err
	}
	err = d.pool.run(ctx, t, command{script: present})
	if err == nil {
		d.log.DebugContext(ctx, "release already on host", "host", h.String(), "sha", rel.SHA)
		return nil
	}
	if exitCode(err) < 0 {
		return err
	}
	form, err := d.forms.get(rel)
	if err != nil {
		return err
	}
	f, err := os.Open(form.path)
	if err != nil {
		return fmt.Errorf("open artifact: %w", err)
	}
	defer f.Close()
	flags := "-xf"
	if form.gzip {
		flags = "-xzf"
	}
	up, err := script(uploadScript, h.Base, rel.SHA, form.sum, rel.Checksum, flags)
	if err != nil {
		return err
	}
	if err := d.pool.run(ctx, t, command{script: up, stdin: f}); err != nil {
		return err
	}
	d.log.InfoContext(ctx, "release uploaded", "host", h.String(), "sha", rel.SHA)
	return nil
}

// short is the 7-character form of a SHA used in messages.
func short(sha string) string {
	if len(sha) > 7 {
		return sha[:7]
	}
	return sha
}
