package app

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/immunity-app/immunity/pipeline/config"
)

func TestKnownSecretsAreTheServersOwn(t *testing.T) {
	file := filepath.Join(t.TempDir(), "mirror-token")
	os.WriteFile(file, []byte("mirror-from-file-0123\n"), 0o600)
	cfg := config.Empty()
	cfg.GitHub.WebhookSecret = "webhook-secret-0123"
	got := knownSecrets(cfg, "mirror-token-0123", []string{
		"PATH=/usr/bin", "HOME=/root", "IMMUNITY_API_TOKEN=imm_api_0123", "IMMUNITY_MIRROR_TOKEN_FILE=" + file,
		"IMMUNITY_LISTEN=127.0.0.1:3102", "AWS_SECRET_ACCESS_KEY=aws-0123",
	})
	for _, want := range []string{"webhook-secret-0123", "mirror-token-0123", "imm_api_0123", "mirror-from-file-0123", "aws-0123"} {
		if !slices.Contains(got, want) {
			t.Errorf("known secrets %q lack %q", got, want)
		}
	}
	for _, not := range []string{"/usr/bin", "/root", "127.0.0.1:3102"} {
		if slices.Contains(got, not) {
			t.Errorf("known secrets hold %q, which is no secret", not)
		}
	}
}
