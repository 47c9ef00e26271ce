package ssh

import (
	"crypto/rand"
	"crypto/rsa"
	"net"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// A host known by its RSA key is asked for an RSA key, so a server that prefers ed25519
// is not refused for a "changed" key it never had.
func TestHostKeyAlgorithmsFollowKnownHosts(t *testing.T) {
	priv, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ssh.NewPublicKey(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "known_hosts")
	write(t, file, knownhosts.Line([]string{"[10.1.2.3]:2222"}, pub)+"\n")
	tg := target{user: "deploy", hostport: "10.1.2.3:2222", s: Settings{KnownHosts: file}}
	remote := &net.TCPAddr{IP: net.ParseIP("10.1.2.3"), Port: 2222}
	_, algos, err := hostKeyCheck(tg, remote)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}; !slices.Equal(algos, want) {
		t.Errorf("host key algorithms %v, want %v", algos, want)
	}
	tg.hostport = "10.9.9.9:22"
	if _, algos, _ := hostKeyCheck(tg, &net.TCPAddr{IP: net.ParseIP("10.9.9.9"), Port: 22}); algos != nil {
		t.Errorf("unknown host: algorithms %v, want the defaults (nil)", algos)
	}
}
