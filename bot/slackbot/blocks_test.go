package slackbot

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/slack-go/slack"

	"github.com/immunity-app/immunity/bot"
	"github.com/immunity-app/immunity/bot/slackbot/slackfake"
	"github.com/immunity-app/immunity/pipeline"
	"github.com/immunity-app/immunity/pipeline/judge"
	"github.com/immunity-app/immunity/store"
)

// long is n characters of text that escaping makes longer (&, <, > become entities).
func long(n int) string { return strings.Repeat("a&b<c>", n/6+1)[:n] }

// fits fails the test when Slack would refuse a message of these blocks and text.
func fits(t *testing.T, what, text string, blocks []slack.Block) {
	t.Helper()
	raw, err := json.Marshal(blocks)
	if err != nil {
		t.Fatal(err)
	}
	if code, problems := slackfake.CheckMessage(text, raw); code != "" {
		t.Errorf("%s: Slack would refuse it (%s):\n%s", what, code, strings.Join(problems, "\n"))
	}
}

// Every message fits Slack's limits, whatever the run holds: a long subject, app and
// region names, many regions, long failure messages, a verdict of many metrics, many
// buttons with long labels. Slack refuses a message over any limit whole.
func TestEveryMessageFitsSlacksLimits(t *testing.T) {
	t.Parallel()
	root := bot.Root{App: long(300), RunID: 7, SHA: "1a2b3c4d5e", Subject: long(5000), Author: long(500),
		Trigger: long(1000), State: store.RunRunning}
	for i := range 400 {
		root.Regions = append(root.Regions, bot.RegionLine{Region: fmt.Sprintf("region-%03d-%s", i, long(90)), Icon: bot.IconFailed,
			Text: "failed and rolled back: " + long(2000)})
	}
	blocks := rootBlocks(root, "https://immunity.example.com/runs/7")
	fits(t, "a root of 400 regions", rootText(root), blocks)
	// The regions left out are counted, and every region is either shown or counted.
	last := blocks[len(blocks)-1].(*slack.SectionBlock).Text.Text
	m := regexp.MustCompile(`… and (\d+) more regions$`).FindStringSubmatch(last)
	if m == nil {
		t.Fatalf("the last region section ends %q; want how many regions are left out", last[max(0, len(last)-80):])
	}
	shown := 0
	for _, b := range blocks[2:] {
		shown += strings.Count(b.(*slack.SectionBlock).Text.Text, "*region-")
	}
	if left, _ := strconv.Atoi(m[1]); shown+left != len(root.Regions) || shown < 40 {
		t.Errorf("%d regions shown and %d counted as left out, of %d", shown, left, len(root.Regions))
	}

	// A usual run of 30 failed regions shows every one.
	usual := bot.Root{App: "papi", RunID: 8, SHA: "1a2b3c4d5e", Subject: "Fix login redirect", State: store.RunFailed}
	for i := range 30 {
		usual.Regions = append(usual.Regions, bot.RegionLine{Region: fmt.Sprintf("prod%d", i), Icon: bot.IconBack,
			Text: "failed and rolled back: " + strings.Repeat("upload to host: ssh: handshake failed ", 5)[:160] + "…"})
	}
	blocks = rootBlocks(usual, "")
	fits(t, "a root of 30 failed regions", rootText(usual), blocks)
	var all string
	for _, b := range blocks[2:] {
		all += b.(*slack.SectionBlock).Text.Text + "\n"
	}
	for _, r := range usual.Regions {
		if !strings.Contains(all, "*"+r.Region+"*") {
			t.Errorf("region %s is not shown", r.Region)
		}
	}

	v := &judge.Verdict{Outcome: judge.Fail, Score: 0, Final: true}
	var names []string
	for i := range 120 {
		name := fmt.Sprintf("metric_%03d_%s", i, long(70))
		names = append(names, name)
		v.Metrics = append(v.Metrics, judge.MetricResult{Name: name, Outcome: judge.Fail, NBaseline: 10, NCanary: 10, Effect: 0.5, Low: 0.1, High: 0.9})
	}
	v.Reason = "worse beyond the allowed effect: " + strings.Join(names, ", ")
	p := bot.Post{Icon: bot.IconFailed, Text: long(50000), Verdict: v}
	for i := range 12 {
		p.Detail = append(p.Detail, fmt.Sprintf("line %d: %s", i, long(1000)))
	}
	for i := range 30 {
		p.Actions = append(p.Actions, bot.Action{ID: fmt.Sprintf("a%d", i), Label: "Promote to " + long(200), Command: "promote papi prod3", IfLive: "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d"})
	}
	fits(t, "a post of everything", postText(p), postBlocks(p))

	actor := pipeline.Actor{SlackUserID: "U0ALICE"}
	fits(t, "a pressed button's answer", "", []slack.Block{pressedBlock(actor, long(500), long(10000))})
}

// fit escapes and clips to its limit as sent, and never cuts an escape in half.
func TestFitClipsEscapedText(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in   string
		max  int
		want string
	}{
		{"a<b", 10, "a&lt;b"},
		{"a<b", 6, "a&lt;b"},
		{"a<bc", 6, "a&lt;…"},
		{"a<bc", 5, "a…"},
		{"abcdef", 6, "abcdef"},
		{"abcdefg", 6, "abcde…"},
		{"ééé&", 6, "ééé…"},
	} {
		got := fit(c.in, c.max)
		if got != c.want || utf8.RuneCountInString(got) > c.max {
			t.Errorf("fit(%q, %d) = %q, want %q", c.in, c.max, got, c.want)
		}
	}
}

// A run whose stages fail with long messages, in many regions, is still told in Slack:
// nothing is refused, and every post of the usual run is there.
func TestLongRunsAreNotRefusedBySlack(t *testing.T) {
	t.Parallel()
	evs := runEvents(t)
	var extra []store.Stage
	for i := range 60 {
		extra = append(extra, store.Stage{Region: fmt.Sprintf("edge-%02d-%s", i, strings.Repeat("x", 40)), State: store.StageRolledBack,
			Message: "upload to host: " + strings.Repeat("ssh: handshake failed: knownhosts: key mismatch & <more> ", 40)})
	}
	for i := range evs {
		evs[i].Run.Stages = append(evs[i].Run.Stages, extra...)
		if st := evs[i].Stage; st != nil && strings.HasPrefix(st.Message, "tests failed on p3b") {
			st.Message += "\n" + strings.Repeat("FAIL TestLogin: expected 302 & got <500> ", 200)
		}
	}
	f := newFakeSlack(t)
	b, _ := newTestBot(t, testConfig(f.GetAPIURL()), openStore(t, t.TempDir()+"/db"), &fakeExec{})
	for _, ev := range evs {
		b.Notify(context.Background(), ev)
		// A post Slack refuses is retried for minutes and holds up the thread behind it.
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		b.Flush(ctx)
		stalled := ctx.Err() != nil
		cancel()
		if stalled {
			t.Errorf("the thread is held up after %s %q", ev.Kind, ev.Message)
			break
		}
	}
	for _, c := range f.Refused() {
		t.Errorf("Slack refused %s %.80q: %s", c.Method, c.Text, c.Refusal)
	}
	var replies []string
	for _, c := range f.Calls() {
		if c.Method == "chat.postMessage" && c.ThreadTS != "" {
			replies = append(replies, c.Text)
		}
	}
	for _, want := range []string{"passed sandbox1", "passed sandbox2", "is ready for prod3", "alice promoted", "failed in prod3: tests failed on p3b"} {
		if !slices.ContainsFunc(replies, func(r string) bool { return strings.Contains(r, want) }) {
			t.Errorf("no reply %q in the thread", want)
		}
	}
	if len(replies) < 5+len(extra) {
		t.Errorf("%d replies, want the usual 5 and one for each of the %d failed regions", len(replies), len(extra))
	}
}
