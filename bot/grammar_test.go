package bot

import (
	"context"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		text, app string
		want      Parsed
	}{
		{"promote papi prod3", "", Parsed{Name: "promote", App: "papi", Region: "prod3"}},
		{"/immunity promote papi prod3", "", Parsed{Name: "promote", App: "papi", Region: "prod3"}},
		{"  Promote  PAPI   Prod3 ", "", Parsed{Name: "promote", App: "papi", Region: "prod3"}},
		{"promote papi prod3 --release 1A2B3C4", "", Parsed{Name: "promote", App: "papi", Region: "prod3", SHA: "1a2b3c4"}},
		{"promote --release=1a2b3c4 papi prod3", "", Parsed{Name: "promote", App: "papi", Region: "prod3", SHA: "1a2b3c4"}},
		{"rollback papi prod3", "", Parsed{Name: "rollback", App: "papi", Region: "prod3"}},
		{"rollback papi prod3 --to 0a1b2c3d", "", Parsed{Name: "rollback", App: "papi", Region: "prod3", SHA: "0a1b2c3d"}},
		{"deploy papi 1a2b3c4 to sandbox2", "", Parsed{Name: "deploy", App: "papi", Region: "sandbox2", SHA: "1a2b3c4"}},
		{"status", "", Parsed{Name: "status"}},
		{"status papi", "", Parsed{Name: "status", App: "papi"}},
		{"lock papi prod3", "", Parsed{Name: "lock", App: "papi", Region: "prod3"}},
		{"lock papi prod3 investigating a   latency --spike", "", Parsed{Name: "lock", App: "papi", Region: "prod3", Reason: "investigating a latency --spike"}},
		{"unlock papi prod3", "", Parsed{Name: "unlock", App: "papi", Region: "prod3"}},
		{"unlock papi prod3 --force", "", Parsed{Name: "unlock", App: "papi", Region: "prod3", Force: true}},
		{"unlock --FORCE papi prod3", "", Parsed{Name: "unlock", App: "papi", Region: "prod3", Force: true}},
		{"history papi", "", Parsed{Name: "history", App: "papi"}},
		{"history papi prod3", "", Parsed{Name: "history", App: "papi", Region: "prod3"}},
		{"help", "", Parsed{Name: "help"}},
		{"help promote", "", Parsed{Name: "help", Topic: "promote"}},
		// GitHub comments: the app is the repo's.
		{"/promote prod3", "papi", Parsed{Name: "promote", Region: "prod3"}},
		{"/promote", "papi", Parsed{Name: "promote"}},
		{"/promote papi prod3", "papi", Parsed{Name: "promote", Region: "prod3"}},
		{"/rollback", "papi", Parsed{Name: "rollback"}},
		{"/rollback prod3 --to 0a1b2c3", "papi", Parsed{Name: "rollback", Region: "prod3", SHA: "0a1b2c3"}},
		{"/lock prod3 reason here", "papi", Parsed{Name: "lock", Region: "prod3", Reason: "reason here"}},
		{"/deploy to sandbox2", "papi", Parsed{Name: "deploy", Region: "sandbox2"}},
		{"/deploy 1a2b3c4 to sandbox2", "papi", Parsed{Name: "deploy", Region: "sandbox2", SHA: "1a2b3c4"}},
		{"/history", "papi", Parsed{Name: "history"}},
		{"/status", "papi", Parsed{Name: "status"}},
		{"promote papi prod3 --force", "", Parsed{Name: "promote", App: "papi", Region: "prod3", Force: true}},
		{"freeze papi prod3 Prod4 until 2026-12-27T09:00Z year-end  freeze", "", Parsed{Name: "freeze", App: "papi", Regions: []string{"prod3", "prod4"},
			Until: "2026-12-27T09:00Z", Reason: "year-end freeze"}},
		{"freeze papi until 2h incident 42", "", Parsed{Name: "freeze", App: "papi", Until: "2h", Reason: "incident 42"}},
		{"freeze --all until 3d datacenter move", "", Parsed{Name: "freeze", All: true, Until: "3d", Reason: "datacenter move"}},
		{"freeze papi prod3 prod3 UNTIL 1h x", "", Parsed{Name: "freeze", App: "papi", Regions: []string{"prod3"}, Until: "1h", Reason: "x"}},
		{"/freeze prod3 until 2h deploy day", "papi", Parsed{Name: "freeze", Regions: []string{"prod3"}, Until: "2h", Reason: "deploy day"}},
		{"/freeze papi until 2h deploy day", "papi", Parsed{Name: "freeze", Until: "2h", Reason: "deploy day"}},
		{"unfreeze papi prod3", "", Parsed{Name: "unfreeze", App: "papi", Regions: []string{"prod3"}}},
		{"unfreeze papi", "", Parsed{Name: "unfreeze", App: "papi"}},
		{"unfreeze --all", "", Parsed{Name: "unfreeze", All: true}},
	}
	for _, tt := range tests {
		got, err := Parse(tt.text, tt.app)
		if err != nil {
			t.Errorf("Parse(%q, %q): %v", tt.text, tt.app, err)
			continue
		}
		if d := cmp.Diff(tt.want, got); d != "" {
			t.Errorf("Parse(%q, %q) (-want +got):\n%s", tt.text, tt.app, d)
		}
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		text, app string
		want      string // a part of the message
	}{
		{"", "", "no command given"},
		{"/immunity", "", "no command given"},
		{"promot papi prod3", "", "did you mean `promote`?"},
		{"rolback papi prod3", "", "did you mean `rollback`?"},
		{"stauts", "", "did you mean `status`?"},
		{"hist papi", "", "did you mean `history`?"},
		{"frobnicate", "", "expected one of promote, rollback"},
		{"promote papi", "", "missing REGION\nusage: promote APP REGION [--release SHA]"},
		{"promote", "", "missing APP and REGION"},
		{"promote papi prod3 --relase 1a2b", "", "did you mean `--release`?"},
		{"promote papi prod3 --release", "", "--release needs a SHA"},
		{"promote papi prod3 --release zzzz", "", "SHA: expected a commit id"},
		{"promote papi prod3 extra", "", `unexpected "extra"`},
		{"promote pa$pi prod3", "", "APP: expected a name"},
		{"deploy papi 1a2b3c4 into sandbox2", "", `expected "to", got "into"`},
		{"deploy papi 1a2b3c4", "", "missing REGION"},
		{"deploy papi 1a2b3c4 sandbox2", "", `missing "to" before REGION`},
		{"unlock papi prod3 --force=yes", "", "--force takes no value"},
		{"status papi extra", "", `unexpected "extra"`},
		{"history", "", "missing APP"},
		{"lock papi", "", "missing REGION"},
		{"/lock", "papi", "missing REGION\nusage: /lock REGION [reason…]"},
		{"/deploy sandbox2", "papi", `missing "to" before REGION`},
		{"/deploy 1a2b3c4 at sandbox2", "papi", `expected "to", got "at"`},
		{"/unlock prod3 --forse", "papi", "did you mean `--force`?"},
		{"promote papi prod3 " + strings.Repeat("x", 100), "", "…"},
		{"freeze papi prod3 2h reason", "", `missing "until" TIME`},
		{"freeze papi prod3 until", "", "missing TIME"},
		{"freeze until 2h reason", "", "missing APP (or --all for every app)"},
		{"freeze --all papi until 2h reason", "", `--all is every app and region; name none, got "papi"`},
		{"freeze papi pr$od until 2h reason", "", "REGION: expected a name"},
		{"freeze papi --al until 2h x", "", "did you mean `--all`?"},
		{"unfreeze", "", "missing APP (or --all for every app)"},
	}
	for _, tt := range tests {
		_, err := Parse(tt.text, tt.app)
		if err == nil {
			t.Errorf("Parse(%q, %q) = nil error, want %q", tt.text, tt.app, tt.want)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Parse(%q, %q) = %q, want it to contain %q", tt.text, tt.app, err, tt.want)
		}
	}
}

func TestUsage(t *testing.T) {
	t.Parallel()
	var got []string
	for _, c := range commands {
		got = append(got, usage(c, false), usage(c, true))
	}
	want := []string{
		"promote APP REGION [--release SHA] [--force]", "/promote [REGION] [--release SHA] [--force]",
		"rollback APP REGION [--to SHA]", "/rollback [REGION] [--to SHA]",
		"deploy APP SHA to REGION [--force]", "/deploy [SHA] to REGION [--force]",
		"rerun APP REGION [--run N]",
		"/rerun [REGION] [--run N]",
		"status [APP]", "/status",
		"lock APP REGION [reason…]", "/lock REGION [reason…]",
		"unlock APP REGION [--force]", "/unlock REGION [--force]",
		"freeze APP [REGION…] until TIME REASON… [--all]", "/freeze [REGION…] until TIME REASON… [--all]",
		"unfreeze APP [REGION…] [--all]", "/unfreeze [REGION…] [--all]",
		"history APP [REGION]", "/history [REGION]",
		"help [COMMAND]", "/help [COMMAND]",
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("usage lines (-want +got):\n%s", d)
	}
}

func TestSuggest(t *testing.T) {
	t.Parallel()
	names := []string{"sandbox1", "sandbox2", "prod3", "prod4"}
	tests := []struct {
		word string
		want []string
	}{
		{"prod5", []string{"prod3", "prod4"}},
		{"prdo3", []string{"prod3"}},
		{"sandbox", []string{"sandbox1", "sandbox2"}},
		{"staging", nil},
		{"", nil},
	}
	for _, tt := range tests {
		if d := cmp.Diff(tt.want, suggest(tt.word, names)); d != "" {
			t.Errorf("suggest(%q) (-want +got):\n%s", tt.word, d)
		}
	}
}

// FuzzParse checks the parser never panics, answers valid UTF-8, keeps its answers short,
// and that what it accepts only holds words of the shapes the grammar allows.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"promote papi prod3 --release 1a2b3c4", "/lock prod3 why", "deploy papi 1a2b to x",
		"unlock a b --force", "help promote", "--release=", "/immunity", "rollback papi prod3 --to"} {
		f.Add(s, "")
		f.Add(s, "papi")
	}
	f.Fuzz(func(t *testing.T, text, app string) {
		p, err := Parse(text, app)
		if err != nil {
			msg := err.Error()
			if !utf8.ValidString(msg) && utf8.ValidString(text) {
				t.Fatalf("invalid UTF-8 answer %q", msg)
			}
			if len(msg) > 600 {
				t.Fatalf("answer too long (%d bytes): %q", len(msg), msg)
			}
			return
		}
		if _, ok := lookup(p.Name); !ok {
			t.Fatalf("accepted unknown command %q", p.Name)
		}
		for _, v := range []string{p.App, p.Region, p.Topic} {
			if v != "" && !nameWord.MatchString(v) {
				t.Fatalf("accepted name %q", v)
			}
		}
		if p.SHA != "" && !shaWord.MatchString(p.SHA) {
			t.Fatalf("accepted sha %q", p.SHA)
		}
	})
}

// FuzzExec checks that no text makes Exec panic or reach the engine with a name the
// config does not have.
func FuzzExec(f *testing.F) {
	for _, s := range []string{"promote papi prod3", "/rollback", "deploy web 1a2b to prod", "status", "lock papi prod4 x y", "history papi sandbox1"} {
		f.Add(s, "", "")
		f.Add(s, "papi", "1a2b3c4")
	}
	f.Fuzz(func(t *testing.T, text, app, sha string) {
		fe := &fakeEngine{cfg: testConfig(), status: waitingStatus()}
		r := New(fe, nil).Exec(context.Background(), Request{Actor: alice, Text: text, App: app, SHA: sha})
		if r.Text == "" {
			t.Fatalf("Exec(%q) gave an empty answer", text)
		}
		for _, c := range fe.calls {
			w := strings.Fields(c)
			if len(w) > 1 && w[0] != "status" && w[0] != "history" {
				if _, ok := fe.cfg.App(w[1]); !ok {
					t.Fatalf("engine asked %q", c)
				}
			}
		}
	})
}
