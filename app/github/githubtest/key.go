package githubtest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

var key struct {
	sync.Once
	pem []byte
}

// KeyFile writes a GitHub App private key (made once per test binary) into the test's
// temporary folder and returns its path.
func KeyFile(t testing.TB) string {
	t.Helper()
	key.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		key.pem = pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
	})
	p := filepath.Join(t.TempDir(), "app.pem")
	if err := os.WriteFile(p, key.pem, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
