package ssh

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/immunity-app/immunity/deployers"
	"github.com/immunity-app/immunity/pipeline/config"
)

func TestSettingsFromTheREADMEExample(t *testing.T) {
	cfg, err := config.Load(filepath.Join("testdata", "immunity.yml"))
	if err != nil {
		t.Fatal(err)
	}
	lookup := ConfigSettings(cfg)
	got := lookup(deployers.Host{App: "papi", Region: "prod3", Name: "web2"})
	want := Settings{
		User: "deploy", KeyFile: "keys/immunity_ed25519", KnownHosts: "keys/known_hosts",
		Restart: []string{"sudo", "systemctl", "restart", "papi"}, HealthPath: "/healthz",
		Timeout: 90 * time.Second, Keep: 5,
	}
	// Relative paths are made absolute by the config loader once it applies the ssh
	// section's defaults; compare the file names either way.
	got.KeyFile, got.KnownHosts = relToTestdata(got.KeyFile), relToTestdata(got.KnownHosts)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("settings (-want +got):\n%s", diff)
	}
	tg, err := parseAddress("10.0.3.12", got)
	if err != nil || tg.user != "deploy" || tg.hostport != "10.0.3.12:22" {
		t.Errorf("address without user and port: %+v, %v", tg, err)
	}
}

func relToTestdata(p string) string {
	if filepath.IsAbs(p) {
		abs, _ := filepath.Abs("testdata")
		p, _ = filepath.Rel(abs, p)
	}
	return p
}

func TestUnknownSSHKeyIsRefused(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "immunity.yml"))
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(data), "known_hosts: keys/known_hosts", "known_host: keys/known_hosts", 1)
	_, err = config.Parse("immunity.yml", []byte(bad))
	if err == nil || !strings.Contains(err.Error(), `did you mean "known_hosts"`) {
		t.Errorf("typo in the ssh section: %v, want a suggestion of known_hosts", err)
	}
}
