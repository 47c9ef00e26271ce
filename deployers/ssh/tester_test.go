package ssh

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/immunity-app/immunity/deployers"
	"github.com/immunity-app/immunity/pipeline/config"
)

// recordingTester is the fallback: it records the hosts it was asked to test.
type recordingTester struct{ hosts []string }

func (r *recordingTester) Test(_ context.Context, _ *config.App, _ deployers.Release, h deployers.Host) (string, error) {
	r.hosts = append(r.hosts, h.String())
	return "ran here", nil
}

func TestTesterRunsTestsOnTheHost(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 2, Settings{})
	ctx := context.Background()
	rel := release(t, "bbbbbbb2222", 100)
	mustAll(t, f.deploy(ctx, f.hosts, rel))
	app := &config.App{Name: "papi", Tests: config.Tests{
		Command: []string{"sh", "-c", `cat version; echo "url=$IMMUNITY_BASE_URL host=$IMMUNITY_HOST extra=$EXTRA"; echo failing >&2; exit 3`},
		Env:     map[string]string{"EXTRA": "it's $(not run)"},
	}, Regions: []config.Region{
		{Name: "sandbox1", Deployer: "ssh", SSH: &config.SSHRegion{TestsOnHost: true}},
		{Name: "sandbox2", Deployer: "ssh", SSH: &config.SSHRegion{}},
	}}
	fallback := &recordingTester{}
	tester := Tester{Deployer: f.d, Fallback: fallback}

	h := f.hosts[0]
	h.URL = "http://10.0.0.1:8080"
	out, err := tester.Test(ctx, app, rel, h)
	var remote *remoteError
	if !errors.As(err, &remote) || remote.code != 3 {
		t.Errorf("failing tests on the host: %v, want exit 3", err)
	}
	for _, want := range []string{rel.SHA, "url=http://10.0.0.1:8080 host=host1 extra=it's $(not run)", "failing"} {
		if !strings.Contains(out, want) {
			t.Errorf("test output %q lacks %q", out, want)
		}
	}
	if len(fallback.hosts) != 0 {
		t.Errorf("tests on the host also ran here: %v", fallback.hosts)
	}

	other := f.hosts[1]
	other.Region = "sandbox2"
	if out, err := tester.Test(ctx, app, rel, other); err != nil || out != "ran here" {
		t.Errorf("region without tests_on_host: %q, %v; want the fallback", out, err)
	}
}
