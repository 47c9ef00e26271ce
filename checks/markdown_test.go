package checks

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/immunity-app/immunity/store"
)

func TestSummaryGolden(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	app := &cfg.Apps[0]

	failed := runAt(store.RunFailed, store.StageFailed, store.StagePending)
	failed.Stages[0].Message = "tests failed on s1"
	failed.Stages[0].Tests = "=== RUN TestItems\n--- PASS: TestItems (0.01s)\n=== RUN TestCreate\n    create_test.go:41: POST /items: got 500, want 201\n--- FAIL: TestCreate (0.02s)\nFAIL\nexit status 1"
	waiting := runAt(store.RunWaiting, store.StageSucceeded, store.StageAwaitingApproval)
	waiting.Stages[0].Tests = "ok  \tpapi/itest\t0.31s"
	done := runAt(store.RunSucceeded, store.StageSucceeded, store.StageSucceeded)
	done.Stages[1].ApprovedBy = "octocat (github)"
	done.Stages[1].Verdict = verdictJSON(t)
	done.Stages[1].Tests = "ok  \tpapi/itest\t0.30s"

	for _, c := range []struct {
		file   string
		run    store.Run
		region int
		live   bool
	}{
		{"sandbox1-failed.md", failed, 0, false},
		{"prod3-not-reached.md", failed, 1, false},
		{"prod3-awaiting.md", waiting, 1, false},
		{"prod3-succeeded.md", done, 1, true},
	} {
		v := view(cfg, app, c.run, &c.run.Stages[c.region], c.live, c.live)
		got := "# " + v.Title + "\n<!-- status: " + v.Status + " " + v.Conclusion + "; buttons: " + labels(v) + " -->\n\n" + v.Summary
		golden(t, c.file, got)
	}
}

func labels(v checkView) string {
	var out []string
	for _, a := range v.Actions {
		out = append(out, a.Label+" ("+a.Identifier+")")
	}
	return strings.Join(out, ", ")
}

func TestSummaryTruncated(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	run := runAt(store.RunFailed, store.StageFailed, store.StagePending)
	var b strings.Builder
	for b.Len() < 300<<10 {
		b.WriteString("--- FAIL: TestHuge (0.01s) ééé ``` output line that goes on and on\n")
	}
	run.Stages[0].Tests = b.String()
	run.Stages[0].Message = strings.Repeat("é", 70000) // no cut inside a rune
	v := view(cfg, &cfg.Apps[0], run, &run.Stages[0], false, false)
	if len(v.Summary) > MaxSummary {
		t.Fatalf("summary is %d bytes, over GitHub's %d", len(v.Summary), MaxSummary)
	}
	if !utf8.ValidString(v.Summary) {
		t.Error("summary was cut inside a UTF-8 sequence")
	}
	if !strings.Contains(v.Summary, "This summary was cut") || !strings.Contains(v.Summary, "https://immunity.example.com/runs/7") {
		t.Errorf("truncated summary lacks the note and link; ends with:\n%s", v.Summary[len(v.Summary)-300:])
	}
}

func TestButtonsWithinLimits(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.Apps[0].Regions[1].Name = "production-eu-west-1"
	run := runAt(store.RunWaiting, store.StageSucceeded, store.StageAwaitingApproval)
	run.Stages[1].Region = "production-eu-west-1"
	v := view(cfg, &cfg.Apps[0], run, &run.Stages[1], false, false)
	if len(v.Actions) == 0 || len(v.Actions) > 3 {
		t.Fatalf("got %d buttons, want 1 to 3", len(v.Actions))
	}
	for _, a := range v.Actions {
		if n := utf8.RuneCountInString(a.Label); n > 20 {
			t.Errorf("label %q is %d characters, over 20", a.Label, n)
		}
		if n := utf8.RuneCountInString(a.Description); n > 40 {
			t.Errorf("description %q is %d characters, over 40", a.Description, n)
		}
		if len(a.Identifier) > 20 {
			t.Errorf("identifier %q over 20", a.Identifier)
		}
	}
}

func TestReconciliationNotesJoinTheSummary(t *testing.T) {
	got := withNotes("## summary\n", "Reconciled with the hosts", []string{"prod3/host2 found on 1a2b3c4, store said 2b3c4d5"})
	want := "## summary\n\n### Reconciled with the hosts\n\n- prod3/host2 found on 1a2b3c4, store said 2b3c4d5\n"
	if got != want {
		t.Fatalf("summary with notes:\n%s\nwant:\n%s", got, want)
	}
	if withNotes("x", "Reconciled with the hosts", nil) != "x" {
		t.Fatal("no notes changed the summary")
	}
}
