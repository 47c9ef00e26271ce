package app

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/immunity-app/immunity/deployers"
	sshdeploy "github.com/immunity-app/immunity/deployers/ssh"
	"github.com/immunity-app/immunity/pipeline/config"
)

func TestSSHSettingsFromTheREADMEExample(t *testing.T) {
	cfg, err := config.Load(filepath.Join("testdata", "ssh-region.yml"))
	if err != nil {
		t.Fatal(err)
	}
	got := sshSettingsLookup(cfg)(deployers.Host{App: "papi", Region: "prod3", Name: "web2"})
	want := sshdeploy.Settings{
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
	if s := sshSettingsLookup(cfg)(deployers.Host{App: "nope", Region: "prod3"}); s.KnownHosts != "" {
		t.Errorf("a host of an unknown app got settings: %+v", s)
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
	data, err := os.ReadFile(filepath.Join("testdata", "ssh-region.yml"))
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(data), "known_hosts: keys/known_hosts", "known_host: keys/known_hosts", 1)
	_, err = config.Parse("immunity.yml", []byte(bad))
	if err == nil || !strings.Contains(err.Error(), `did you mean "known_hosts"`) {
		t.Errorf("typo in the ssh section: %v, want a suggestion of known_hosts", err)
	}
}

// recordingTester records the hosts it was asked to test.
type recordingTester struct{ hosts []string }

func (r *recordingTester) Test(_ context.Context, _ deployers.Release, h deployers.Host, _ deployers.Tests) (string, error) {
	r.hosts = append(r.hosts, h.String())
	return "ran here", nil
}

func TestTestsRunOnTheHostOnlyWhereTheRegionSaysSo(t *testing.T) {
	cfg := &config.Config{Apps: []config.App{{Name: "papi", Regions: []config.Region{
		{Name: "sandbox1", Deployer: "ssh", SSH: &config.SSHRegion{TestsOnHost: true}},
		{Name: "sandbox2", Deployer: "ssh", SSH: &config.SSHRegion{}},
		{Name: "local", Deployer: "local"},
	}}}}
	here := &recordingTester{}
	dep := sshdeploy.New(sshdeploy.Options{Settings: func(deployers.Host) sshdeploy.Settings {
		return sshdeploy.Settings{User: "deploy", KnownHosts: filepath.Join(t.TempDir(), "known_hosts"), Timeout: time.Second}
	}})
	defer dep.Close()
	tt := testers{cfg: cfg, ssh: dep, here: here}
	rel := deployers.Release{App: "papi", SHA: "1a2b3c4d5e6f"}
	for _, region := range []string{"sandbox2", "local"} {
		if out, err := tt.Test(t.Context(), rel, deployers.Host{App: "papi", Region: region, Name: "host1"}, deployers.Tests{}); err != nil || out != "ran here" {
			t.Errorf("%s: %q %v, want the tests run on this machine", region, out, err)
		}
	}
	// tests_on_host goes over SSH: with no server there, the connection error says so.
	_, err := tt.Test(t.Context(), rel, deployers.Host{App: "papi", Region: "sandbox1", Name: "host1", Address: "deploy@127.0.0.1:1", Base: "/srv/papi"},
		deployers.Tests{Command: []string{"true"}})
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("tests_on_host: %v, want an SSH connection error", err)
	}
	if want := []string{"sandbox2/host1", "local/host1"}; !slices.Equal(here.hosts, want) {
		t.Errorf("run here: %v, want %v", here.hosts, want)
	}
}
