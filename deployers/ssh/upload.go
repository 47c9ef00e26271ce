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

// uploadScript receives the release on stdin into releases/<sha>.tmp, checks its sha256
// (openssl when present: several times faster than sha256sum), unpacks it, writes the
// marker and renames the folder to releases/<sha>. It first deletes uploads abandoned over
// an hour ago. Exit 65 means the checksum did not match. (Writing the file and reading it
// back costs less CPU than hashing and unpacking the stream through tee and a fifo.)
// Args: base, sha, sha256 of the stream, marker checksum, tar flags (-xzf or -xf).
const uploadScript = `set -e
umask 022
mkdir -p %[1]s/releases
cd %[1]s/releases
sha=%[2]s
want=%[3]s
find . -maxdepth 1 -name '*.tmp' -mmin +60 -exec rm -rf {} + 2>/dev/null || true
rm -rf "$sha.tmp"
mkdir "$sha.tmp"
cat > "$sha.tmp/.immunity-upload"
if command -v openssl >/dev/null 2>&1; then
	got=$(openssl dgst -sha256 -r < "$sha.tmp/.immunity-upload")
else
	got=$(sha256sum < "$sha.tmp/.immunity-upload")
fi
got=${got%%%% *}
if [ "$got" != "$want" ]; then
	rm -rf "$sha.tmp"
	echo "immunity: checksum mismatch: got sha256 $got, want $want" >&2
	exit 65
fi
tar -b 256 %[5]s "$sha.tmp/.immunity-upload" -C "$sha.tmp" --no-same-owner
rm -f "$sha.tmp/.immunity-upload"
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
	up, err := script(uploadScript, h.Base, rel.SHA, form.sum, rel.Checksum, flags)
	if err != nil {
		return err
	}
	if err := d.pool.run(ctx, t, command{script: up, stdin: f}); err != nil {
		return err
	}
	d.log.InfoContext(ctx, "release uploaded", "app", h.App, "region", h.Region, "host", h.Name, "sha", rel.SHA)
	return nil
}

// short is the 7-character form of a SHA used in messages.
func short(sha string) string {
	if len(sha) > 7 {
		return sha[:7]
	}
	return sha
}
