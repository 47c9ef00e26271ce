package ssh

import (
	"context"
	"crypto/rand"
	"encoding/hex"
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

// uploadScript receives the release on stdin into a folder of its own attempt,
// releases/.<sha>.<token>.tmp, checks its sha256 (openssl when present: several times
// faster than sha256sum), unpacks it and writes the marker; placeScript then puts it in
// place, a command of its own so that the fence is checked right before it. Attempts of
// one release may overlap on a host: a command whose connection was cut goes on until it
// notices, and a retry may already be running beside it. So each attempt touches only its
// own folders (removed on the way out by an EXIT trap unless the folder is complete; on a
// checksum mismatch before the message, which a cut connection's closed stderr may not let
// a shell survive). The script first deletes uploads abandoned over an hour ago and what a
// prune cut part-way left (releases set aside to be deleted, see pruneBody). Exit 65
// means the checksum did not match. (Writing the file and reading it back costs less CPU
// than hashing and unpacking the stream through tee and a fifo.)
// Args: base, sha, sha256 of the stream, marker checksum, tar flags (-xzf or -xf), token.
const uploadScript = `set -e
umask 022
mkdir -p %[1]s/releases
cd %[1]s/releases
sha=%[2]s
want=%[3]s
sum=%[4]s
tok=%[6]s
tmp=".$sha.$tok.tmp"
find . -mindepth 1 -maxdepth 1 \( -name '*.tmp' -mmin +60 -o -name '.*.trash' \) -exec rm -rf {} + 2>/dev/null || true
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp"
cat > "$tmp/.immunity-upload"
if command -v openssl >/dev/null 2>&1; then
	got=$(openssl dgst -sha256 -r < "$tmp/.immunity-upload")
else
	got=$(sha256sum < "$tmp/.immunity-upload")
fi
got=${got%%%% *}
if [ "$got" != "$want" ]; then
	rm -rf "$tmp"
	echo "immunity: checksum mismatch: got sha256 $got, want $want" >&2
	exit 65
fi
tar -b 256 %[5]s "$tmp/.immunity-upload" -C "$tmp" --no-same-owner
rm -f "$tmp/.immunity-upload"
printf '%%s\n' "$sum" > "$tmp/.immunity-release"
trap - EXIT
`

// placeScript renames an attempt's complete folder (uploadScript) to releases/<sha>. The
// rename never goes into or over a complete copy another attempt put there first: that
// copy is kept and this one dropped. A folder under the release's name that is not a
// complete copy of this artifact is renamed aside first, then replaced. The attempt's
// folders are removed on the way out. Args: base, sha, marker checksum, token.
const placeScript = `set -e
cd %[1]s/releases
sha=%[2]s
sum=%[3]s
tok=%[4]s
tmp=".$sha.$tok.tmp"
old=".$sha.$tok.old.tmp"
trap 'rm -rf "$tmp" "$old"' EXIT
complete() { [ "$(cat "$sha/.immunity-release" 2>/dev/null)" = "$sum" ]; }
if [ ! -f "$tmp/.immunity-release" ]; then
	complete && exit 0
	echo "immunity: the upload of release $sha is gone from the host" >&2
	exit 1
fi
if ! mv -T "$tmp" "$sha" 2>/dev/null && ! complete; then
	mv -T "$sha" "$old" 2>/dev/null || true
	if ! mv -T "$tmp" "$sha" && ! complete; then
		echo "immunity: could not put release $sha in place" >&2
		exit 1
	fi
fi
`

// dropScript removes an attempt's folder that was not put in place. Args: base, sha, token.
const dropScript = `cd %[1]s/releases || exit 0
sha=%[2]s
tok=%[3]s
rm -rf ".$sha.$tok.tmp"
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
		d.log.DebugContext(ctx, "release already on host", "app", h.App, "region", h.Region, "host", h.Name, "sha", rel.SHA)
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
	tok, err := attemptToken()
	if err != nil {
		return err
	}
	up, err := script(uploadScript, h.Base, rel.SHA, form.sum, rel.Checksum, flags, tok)
	if err != nil {
		return err
	}
	if err := d.pool.run(ctx, t, command{script: up, stdin: f, change: true}); err != nil {
		return err
	}
	place, err := script(placeScript, h.Base, rel.SHA, rel.Checksum, tok)
	if err != nil {
		return err
	}
	if err := d.pool.run(ctx, t, command{script: place, change: true}); err != nil {
		if refusedByFence(err) {
			// Only this attempt's own folder is left to remove: no change of the host.
			if drop, derr := script(dropScript, h.Base, rel.SHA, tok); derr == nil {
				d.pool.run(ctx, t, command{script: drop})
			}
		}
		return err
	}
	d.log.InfoContext(ctx, "release uploaded", "app", h.App, "region", h.Region, "host", h.Name, "sha", rel.SHA)
	return nil
}

// attemptToken names one upload attempt's folders on the host: random, so no two attempts
// (of this process or another) share them.
func attemptToken() (string, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("upload token: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// short is the 7-character form of a SHA used in messages.
func short(sha string) string {
	if len(sha) > 7 {
		return sha[:7]
	}
	return sha
}
