package bot

import (
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/immunity-app/immunity/pipeline"
	"github.com/immunity-app/immunity/pipeline/config"
	"github.com/immunity-app/immunity/store"
)

var update = flag.Bool("update", false, "rewrite golden files")

// golden compares got with testdata/NAME, rewriting it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	goldenPath(t, filepath.Join("testdata", name), got)
}

// goldenPath compares got with the file at path, rewriting it with -update.
func goldenPath(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run go test -update to create it): %v", err)
	}
	if d := cmp.Diff(string(want), got); d != "" {
		t.Errorf("%s (-want +got):\n%s", path, d)
	}
}

var (
	alice = pipeline.Actor{ID: "slack:T1/U0ALICE", Name: "alice", Via: "slack", SlackUserID: "U0ALICE"}
	carol = pipeline.Actor{ID: "slack:T1/U0LINKED", Name: "carol", Via: "slack", SlackUserID: "U0LINKED"} // linked to GitHub login carol
	dave  = pipeline.Actor{ID: "github:4", Name: "dave", Via: "github", GitHubLogin: "dave", GitHubID: 4}
	cli   = pipeline.Actor{ID: "local:root", Name: "root", Via: "socket", Admin: true}
)

func waitingStatus() []pipeline.AppStatus {
	return []pipeline.AppStatus{{App: "papi", Regions: []pipeline.RegionStatus{
		{Name: "sandbox1", LiveSHA: "1a2b3c4d5e", Live: map[string]string{"h1": "1a2b3c4d5e"}},
		{Name: "sandbox2", LiveSHA: "1a2b3c4d5e", Live: map[string]string{"h1": "1a2b3c4d5e"}},
		{Name: "prod3", Production: true, ManualApproval: true, LiveSHA: "0a1b2c3d4e", Live: map[string]string{"h1": "0a1b2c3d4e", "h2": "0a1b2c3d4e"},
			Waiting: &pipeline.StageRef{RunID: 12, SHA: "1a2b3c4d5e", Subject: "Fix login", State: "awaiting_approval"},
			Lock:    &store.Lock{Holder: "bob", Reason: "db migration"}},
		{Name: "prod4", Production: true, Live: map[string]string{"h1": "0a1b2c3d4e", "h2": "9f8e7d6c5b"},
			Active: &pipeline.StageRef{RunID: 11, SHA: "0a1b2c3d4e", State: "deploying"}},
	}}}
}

func TestExec(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		req       Request
		wantOK    bool
		wantText  string // a part of the answer
		wantCalls []string
	}{
		{"promote", Request{Actor: alice, Text: "promote papi prod3"}, true, "promoted papi to prod3",
			[]string{"promote papi prod3  by alice (slack)"}},
		{"promote a release", Request{Actor: cli, Text: "promote papi prod3 --release 1a2b3c4"}, true, "promoted",
			[]string{"promote papi prod3 1a2b3c4 by root (socket)"}},
		{"unknown app", Request{Actor: alice, Text: "promote pap prod3"}, false, "no app \"pap\"; did you mean `papi`?", nil},
		{"unknown region", Request{Actor: alice, Text: "rollback papi prod5"}, false, "no region \"prod5\" in app papi; did you mean `prod3` or `prod4`?", nil},
		{"far-off region", Request{Actor: alice, Text: "lock papi eu"}, false, "expected one of sandbox1, sandbox2, prod3, prod4", nil},
		{"typo", Request{Actor: alice, Text: "promtoe papi prod3"}, false, "did you mean `promote`?", nil},
		{"comment promote picks the waiting region", Request{Actor: dave, Text: "/promote", App: "papi"}, true, "promoted papi to prod3",
			[]string{"status papi", "promote papi prod3  by dave (github)"}},
		{"comment rollback picks where the commit is live", Request{Actor: dave, Text: "/rollback", App: "papi", SHA: "9f8e7d6c5b4a3f2e1d0c"}, true, "rolled back papi in prod4",
			[]string{"status papi", "rollback papi prod4  by dave (github)"}},
		{"comment rollback of a commit live in several regions", Request{Actor: dave, Text: "/rollback", App: "papi", SHA: "1a2b3c4"}, false,
			"sandbox1 and sandbox2 are running 1a2b3c4; name one: `/rollback sandbox1`", []string{"status papi"}},
		{"comment promote takes the pull request's head", Request{Actor: dave, Text: "/promote", App: "papi", SHA: "1a2b3c4d5e6f", SHASource: "the head of pull request #5"}, true, "promoted papi to prod3",
			[]string{"status papi", "promote papi prod3 1a2b3c4d5e by dave (github)"}},
		{"comment promote of a region, head waiting there", Request{Actor: dave, Text: "/promote prod3", App: "papi", SHA: "1a2b3c4d5e6f"}, true, "promoted papi to prod3",
			[]string{"status papi", "promote papi prod3 1a2b3c4d5e by dave (github)"}},
		{"comment promote when the head is not the release waiting", Request{Actor: dave, Text: "/promote prod3", App: "papi", SHA: "9f8e7d6c5b", SHASource: "the head of pull request #5"}, false,
			"The head of pull request #5 (9f8e7d6) is not the release waiting for promotion to prod3, so nothing was promoted; waiting: 1a2b3c4 for prod3. To promote that one, comment on its commit or use `/promote prod3 --release 1a2b3c4`.",
			[]string{"status papi"}},
		{"comment promote where nothing waits", Request{Actor: dave, Text: "/promote prod4", App: "papi", SHA: "1a2b3c4d5e"}, false,
			"The commit (1a2b3c4) is not the release waiting for promotion to prod4, so nothing was promoted; no release of papi is waiting for promotion to prod4.",
			[]string{"status papi"}},
		{"comment promote --release wins over the commit", Request{Actor: dave, Text: "/promote prod3 --release 0a1b2c3", App: "papi", SHA: "9f8e7d6c5b"}, true, "promoted",
			[]string{"promote papi prod3 0a1b2c3 by dave (github)"}},
		{"comment rollback with no commit", Request{Actor: dave, Text: "/rollback", App: "papi"}, false, "which region?", nil},
		{"comment deploy takes the commit", Request{Actor: dave, Text: "/deploy to sandbox2", App: "papi", SHA: "1a2b3c4"}, true, "deploying",
			[]string{"deploy papi 1a2b3c4 sandbox2 force=false by dave (github)"}},
		{"comment names the app anyway", Request{Actor: dave, Text: "/lock papi prod4 release freeze", App: "papi"}, true, "locked",
			[]string{`lock papi prod4 "release freeze" by dave (github)`}},
		{"unlock force", Request{Actor: alice, Text: "unlock papi prod3 --force"}, true, "unlocked",
			[]string{"unlock papi prod3 force=true by alice (slack)"}},
		{"engine error", Request{Actor: alice, Text: "deploy web 1a2b3c4 to staging"}, false, "boom: unknown release",
			[]string{"deploy web 1a2b3c4 staging force=false by alice (slack)"}},
		{"status", Request{Actor: alice, Text: "status papi"}, true, "waiting for promotion: 1a2b3c4 \"Fix login\" (run 12)",
			[]string{"status papi"}},
		{"history", Request{Actor: alice, Text: "history papi prod3"}, true, "no releases have gone live in papi/prod3 yet",
			[]string{"history papi prod3 15"}},
		{"help topic typo", Request{Actor: alice, Text: "help promot"}, false, "did you mean `promote`?", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := &fakeEngine{cfg: testConfig(), status: waitingStatus()}
			if strings.HasPrefix(tt.req.Text, "deploy web") {
				f.err = errors.New("boom: unknown release")
			}
			r := New(f, nil).Exec(context.Background(), tt.req)
			if r.OK != tt.wantOK || !strings.Contains(r.Text, tt.wantText) {
				t.Errorf("Exec(%q) = OK %v %q, want OK %v and %q", tt.req.Text, r.OK, r.Text, tt.wantOK, tt.wantText)
			}
			if d := cmp.Diff(tt.wantCalls, f.calls); d != "" {
				t.Errorf("engine calls (-want +got):\n%s", d)
			}
		})
	}
}

func TestExecAuditsRefusals(t *testing.T) {
	t.Parallel()
	f := &fakeEngine{cfg: testConfig(), status: waitingStatus()}
	c := New(f, nil)
	ctx := context.Background()
	c.Exec(ctx, Request{Actor: alice, Text: "promote pap prod3"})  // unknown app: refused, audited
	c.Exec(ctx, Request{Actor: alice, Text: "promote papi"})       // parse error: audited
	c.Exec(ctx, Request{Actor: alice, Text: "status nope"})        // read-only: not audited
	c.Exec(ctx, Request{Actor: alice, Text: "frob papi"})          // not a command: not audited
	c.Exec(ctx, Request{Actor: dave, Text: "/lock", App: "papi"})  // parse error in a comment: audited with the app
	c.Exec(ctx, Request{Actor: alice, Text: "promote papi prod3"}) // ok: the engine audits, not us
	want := []string{
		"alice (slack)|promote|pap|prod3||promote pap prod3|refused",
		"alice (slack)|promote||||promote papi|refused",
		"dave (github)|lock|papi|||/lock|refused",
	}
	if d := cmp.Diff(want, f.audits); d != "" {
		t.Errorf("audits (-want +got):\n%s", d)
	}
}

func TestAuthorization(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.Apps[0].Access = &config.Access{
		NonProduction: []config.Grant{{Actions: []string{"*"}, GitHubTeams: []string{"acme/devs"}}},
		Production: []config.Grant{
			{Actions: []string{"promote", "rollback"}, SlackGroups: []string{"S0SRE"}, GitHubUsers: []string{"Carol"}},
			{Actions: []string{"lock", "unlock"}, SlackUsers: []string{"U0ALICE"}, GitHubTeams: []string{"acme/broken"}},
		},
		Regions: map[string][]config.Grant{"prod4": {{Actions: []string{"rollback"}, GitHubUsers: []string{"dave"}}}},
	}
	members := fakeMembers{"acme/devs:dave": true, "S0SRE:U0ERIN": true}
	erin := pipeline.Actor{ID: "slack:T1/U0ERIN", Name: "erin", Via: "button", SlackUserID: "U0ERIN"}
	tests := []struct {
		actor pipeline.Actor
		text  string
		ok    bool
		why   string
	}{
		{dave, "deploy papi 1a2b3c4 to sandbox1", true, ""},                 // team acme/devs
		{alice, "deploy papi 1a2b3c4 to sandbox1", false, "may not deploy"}, // not in acme/devs
		{erin, "promote papi prod3", true, ""},                              // Slack group S0SRE
		{carol, "rollback papi prod3", true, ""},                            // Slack user linked to GitHub login carol
		{dave, "promote papi prod3", false, `dave may not promote papi/prod3: no grant of "promote" under access.production matches you`},
		{alice, "lock papi prod3 freeze", true, ""},
		{alice, "promote papi prod3", false, "(your Slack user U0ALICE is not linked to a GitHub login in slack.users)"},
		{dave, "lock papi prod3", false, "could not check GitHub team acme/broken: GitHub answered 502"},
		{dave, "rollback papi prod4", true, ""}, // prod4 has its own grants
		{erin, "rollback papi prod4", false, "under access.regions.prod4"},
		{cli, "promote papi prod4", true, ""},           // the local operator
		{alice, "deploy web 1a2b3c4 to prod", true, ""}, // web has no access config: open
		{alice, "status papi", true, ""},                // reading is open
	}
	for _, tt := range tests {
		f := &fakeEngine{cfg: cfg, status: waitingStatus()}
		r := New(f, members).Exec(context.Background(), Request{Actor: tt.actor, Text: tt.text})
		if r.OK != tt.ok || !strings.Contains(r.Text, tt.why) {
			t.Errorf("%s: %q = OK %v %q; want OK %v and %q", tt.actor, tt.text, r.OK, r.Text, tt.ok, tt.why)
		}
		if !tt.ok && (len(f.calls) > 0 || len(f.audits) != 1 || !strings.HasSuffix(f.audits[0], "|refused")) {
			t.Errorf("%s: %q refused: engine calls %q, audits %q; want no calls and one refusal audited", tt.actor, tt.text, f.calls, f.audits)
		}
	}
}

func TestHelpGolden(t *testing.T) {
	t.Parallel()
	f := &fakeEngine{cfg: testConfig()}
	c := New(f, nil)
	var b strings.Builder
	for _, req := range []Request{
		{Actor: alice, Text: "help"},
		{Actor: alice, Text: "help promote"},
		{Actor: alice, Text: "help status"},
		{Actor: dave, Text: "/help", App: "papi"},
		{Actor: dave, Text: "/help deploy", App: "papi"},
		{Actor: dave, Text: "/help rollback", App: "papi"},
	} {
		r := c.Exec(context.Background(), req)
		if !r.OK {
			t.Errorf("%q: %s", req.Text, r.Text)
		}
		b.WriteString("> " + req.Text + "\n" + r.Text + "\n\n")
	}
	golden(t, "help.golden", b.String())
}

func TestStatusHistoryGolden(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 22, 1, 2, 0, 0, time.UTC)
	f := &fakeEngine{cfg: testConfig(), status: waitingStatus(), hist: []store.HistoryEntry{
		{App: "papi", Region: "prod3", SHA: "1a2b3c4d5e", Action: "rollback", Actor: "alice (slack)", At: at},
		{App: "papi", Region: "prod3", SHA: "0a1b2c3d4e", Action: "promote", Actor: "bob (button)", RunID: 11, At: at.Add(-time.Hour)},
		{App: "papi", Region: "sandbox1", SHA: "0a1b2c3d4e", Action: "deploy", RunID: 11, At: at.Add(-2 * time.Hour)},
	}}
	c := New(f, nil)
	var b strings.Builder
	for _, text := range []string{"status", "history papi"} {
		r := c.Exec(context.Background(), Request{Actor: alice, Text: text})
		b.WriteString("> " + text + "\n" + r.Text + "\n\n")
	}
	golden(t, "status.golden", b.String())
}
