package pipeline

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/immunity-app/immunity/deployers"
	"github.com/immunity-app/immunity/pipeline/config"
	"github.com/immunity-app/immunity/store"
)

// A test command that prints its whole environment shows none of the server's secrets:
// it gets the base variables, the config's tests.env and the facts of the run only.
func TestTestCommandPrintingItsEnvironmentShowsNoServerSecret(t *testing.T) {
	t.Setenv("IMMUNITY_API_TOKEN", "imm_api_token_value_0123456789")
	t.Setenv("IMMUNITY_MIRROR_TOKEN", "mirror-token-value-0123456789")
	t.Setenv("IMMUNITY_SLACK_BOT_TOKEN", "xoxb-slack-token-0123456789")
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	os.MkdirAll(filepath.Join(src, "bin"), 0o755)
	os.WriteFile(filepath.Join(src, "bin", "printenv"), []byte("#!/bin/sh\nenv\n"), 0o755)
	art := filepath.Join(dir, "rel.tar.gz")
	f, _ := os.Create(art)
	if err := deployers.Pack(src, []string{"bin"}, f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	sum, _ := deployers.FileChecksum(art)
	rel := deployers.Release{App: "papi", SHA: "abc1234", Artifact: art, Checksum: sum}
	h := deployers.Host{App: "papi", Region: "prod3", Name: "host1", URL: "http://127.0.0.1:1"}
	tests := deployers.Tests{Command: []string{"bin/printenv"}, Env: map[string]string{"IMMUNITY_BASE_URL": h.URL, "FROM_CONFIG": "yes"}, Timeout: 10 * time.Second}
	out, err := CommandTester{Dir: dir}.Test(context.Background(), rel, h, tests)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, secret := range []string{"imm_api_token", "mirror-token-value", "xoxb-slack", "IMMUNITY_API_TOKEN", "IMMUNITY_MIRROR_TOKEN"} {
		if strings.Contains(out, secret) {
			t.Errorf("the test command saw %q:\n%s", secret, out)
		}
	}
	for _, want := range []string{"PATH=", "IMMUNITY_BASE_URL=http://127.0.0.1:1", "FROM_CONFIG=yes"} {
		if !strings.Contains(out, want) {
			t.Errorf("the test command lacks %q:\n%s", want, out)
		}
	}
}

// Test output holding a known secret value is stored and told with it redacted.
func TestTestOutputIsRedacted(t *testing.T) {
	h := newHarness(t, fourRegions)
	h.eng.Stop()
	const secret = "s3cr3t-token-98765"
	eng, err := New(Options{Config: h.cfg, Store: h.st, Builder: h.build, Tester: h.tests, Monitor: h.monitor, Secrets: []string{secret, "abc"},
		Deployer: func(*config.App, *config.Region) (deployers.Deployer, error) { return h.dep, nil }, Tick: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	eng.AddListener(h.rec)
	if err := eng.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.eng = eng
	t.Cleanup(eng.Stop)
	sha := h.build.add("leaks a token")
	h.tests.fail[sha] = true
	h.tests.print = "token=" + secret + "\n"
	run, err := eng.StartRun(context.Background(), "papi", sha, Trigger{Kind: "push"})
	if err != nil {
		t.Fatal(err)
	}
	r := h.waitState(run.ID, store.RunFailed)
	s := stageOf(r, "sandbox1")
	if strings.Contains(s.Tests+s.Message+r.Message, secret) || !strings.Contains(s.Tests, "token=[redacted]") || !strings.Contains(s.Message, "[redacted]") {
		t.Fatalf("stage tests %q message %q", s.Tests, s.Message)
	}
	h.rec.mu.Lock()
	defer h.rec.mu.Unlock()
	for _, ev := range h.rec.events {
		if strings.Contains(ev.Message, secret) || strings.Contains(ev.Run.Message, secret) {
			t.Fatalf("a listener was told the secret: %+v", ev.Message)
		}
	}
	if strings.Contains(s.Tests, "[redacted]bc") {
		t.Fatal("a short value was redacted in ordinary words")
	}
}
