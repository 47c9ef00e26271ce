package slackbot

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/immunity-app/immunity/pipeline"
)

// runEvents is a whole run of papi as the engine reports it (written by bot's tests).
func runEvents(t *testing.T) []pipeline.Event {
	t.Helper()
	raw, err := os.ReadFile("../../fixtures/slack/run_events.json")
	if err != nil {
		t.Fatal(err)
	}
	var evs []pipeline.Event
	if err := json.Unmarshal(raw, &evs); err != nil {
		t.Fatal(err)
	}
	return evs
}

// replay tells the bot each event once Slack has seen the previous one, as a real run
// spreads them over minutes.
func replay(t *testing.T, b *Bot, evs []pipeline.Event) {
	for _, ev := range evs {
		b.Notify(context.Background(), ev)
		b.Flush(t.Context())
	}
}

func TestThreadPerRun(t *testing.T) {
	t.Parallel()
	f := newFakeSlack(t)
	dbPath := filepath.Join(t.TempDir(), "db")
	b, _ := newTestBot(t, testConfig(f.GetAPIURL()), openStore(t, dbPath), &fakeExec{})
	replay(t, b, runEvents(t))

	calls := f.Calls()
	var roots []call
	for _, c := range calls {
		if c.Method == "chat.postMessage" && c.ThreadTS == "" {
			roots = append(roots, c)
		}
	}
	// One root for the run; the lock (a region event outside the run) goes to the channel.
	if len(roots) != 2 || !strings.Contains(roots[1].Text, "locked papi prod3") {
		t.Fatalf("top-level messages: %+v; want the run's root and the lock notice", roots)
	}
	root := roots[0]
	var summary []string
	for _, c := range calls {
		switch {
		case c.Method == "chat.postMessage" && c.Channel != "#deploys" && c.Channel != "C0DEPLOYS":
			t.Errorf("%s posted to %q, want #deploys", c.Method, c.Channel)
		case c.Method != "chat.postMessage" && c.Channel != "C0DEPLOYS":
			t.Errorf("%s sent to %q, want the channel's ID C0DEPLOYS (Slack refuses names there)", c.Method, c.Channel)
		case c.Method == "chat.update" && c.TS != root.TS:
			t.Errorf("chat.update of %s, want the root %s", c.TS, root.TS)
		case c.Method != "chat.update" && c.TS != root.TS && c.TS != roots[1].TS && c.ThreadTS != root.TS:
			t.Errorf("%s %q not in the run's thread (thread_ts %q, want %q)", c.Method, c.Text, c.ThreadTS, root.TS)
		}
		if c.Method == "chat.postMessage" && c.ThreadTS != "" {
			summary = append(summary, map[bool]string{true: "broadcast: ", false: "reply: "}[c.Broadcast]+c.Text)
		}
		if c.Method == "files.completeUploadExternal" {
			summary = append(summary, "file: "+c.Text)
		}
	}
	want := []string{
		"reply: papi 1a2b3c4 passed sandbox1 in 10s",
		"reply: papi 1a2b3c4 passed sandbox2 in 15s",
		`file: [{"id":"F000004","title":"canary vs baseline: sandbox2"}]`,
		"broadcast: papi 1a2b3c4 is ready for prod3: waiting for promotion",
		"reply: alice promoted papi 1a2b3c4 to prod3",
		"broadcast: papi 1a2b3c4 failed in prod3: tests failed on p3b: exit status 1; rolled back 2 hosts",
	}
	if !equalStrings(want, summary) {
		t.Errorf("thread replies:\n%s\nwant:\n%s", strings.Join(summary, "\n"), strings.Join(want, "\n"))
	}
	if n := countMethod(calls, "chat.update"); n < 10 || n >= len(runEvents(t)) {
		t.Errorf("%d root updates; want one per event that changed the root", n)
	}
	for id, png := range f.Uploads {
		if !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) {
			t.Errorf("upload %s is not a PNG", id)
		}
	}
	if len(f.Uploads) != 1 {
		t.Errorf("%d files uploaded, want the sandbox2 chart", len(f.Uploads))
	}
	goldenCalls(t, "thread.json", root, calls)

	// A restarted server keeps posting into the same thread and repeats nothing.
	st2 := openStore(t, dbPath)
	f2 := newFakeSlack(t)
	b2, _ := newTestBot(t, testConfig(f2.GetAPIURL()), st2, &fakeExec{})
	replay(t, b2, runEvents(t)[10:])
	for _, c := range f2.Calls() {
		if c.Method == "chat.postMessage" && c.ThreadTS == "" && !strings.Contains(c.Text, "locked") {
			t.Errorf("after a restart, a new top-level message %q; want the old thread", c.Text)
		}
		if c.Method == "chat.postMessage" && c.ThreadTS != "" {
			t.Errorf("after a restart, repeated %q", c.Text)
		}
		if c.Method == "chat.update" && c.TS != root.TS {
			t.Errorf("after a restart, updated %s; want the old root %s", c.TS, root.TS)
		}
	}
}

// goldenCalls writes the root's last content and every reply's blocks, with the ts
// replaced by names so the file reads as the thread does.
func goldenCalls(t *testing.T, name string, root call, calls []call) {
	t.Helper()
	var last call = root
	var out []call
	for _, c := range calls {
		if c.Method == "chat.update" {
			last = c
		}
	}
	out = append(out, call{Method: "root (final)", Text: last.Text, Blocks: last.Blocks})
	for _, c := range calls {
		if c.Method == "chat.postMessage" && c.TS != root.TS {
			c.TS = ""
			if c.ThreadTS == root.TS {
				c.ThreadTS = "ROOT"
			}
			out = append(out, c)
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	for i := range out {
		var v any
		if len(out[i].Blocks) > 0 {
			json.Unmarshal(out[i].Blocks, &v)
			out[i].Blocks, _ = json.Marshal(v)
		}
	}
	enc.Encode(out)
	golden(t, name, buf.String())
}

func countMethod(calls []call, m string) int {
	n := 0
	for _, c := range calls {
		if c.Method == m {
			n++
		}
	}
	return n
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestRateLimited: Slack answers 429 with Retry-After; the bot waits and posts everything,
// in order, and Notify never waits for Slack.
func TestRateLimited(t *testing.T) {
	t.Parallel()
	f := newFakeSlack(t)
	f.Limited["chat.postMessage"] = 1
	f.Hold = make(chan struct{})
	cfg := testConfig(f.GetAPIURL())
	b, _ := newTestBot(t, cfg, openStore(t, filepath.Join(t.TempDir(), "db")), &fakeExec{})
	b.charts = false
	var waits, retries atomic.Int64
	b.waited = func(d time.Duration) { waits.Add(int64(d)) }
	b.retried = func() { retries.Add(1) }
	evs := runEvents(t)
	for i := 0; i < 3; i++ { // Slack holds every post; Notify must still return
		for _, ev := range evs {
			b.Notify(context.Background(), ev)
		}
	}
	close(f.Hold)
	b.Flush(t.Context())
	calls := f.Calls()
	if calls[0].Method != "chat.postMessage" || calls[0].ThreadTS != "" {
		t.Fatalf("first call %+v; want the root, retried after the rate limit", calls[0])
	}
	// The run's root and 5 replies once each, though told 3 times; the lock notice (a
	// region event, not part of a run) each time it happened.
	if n := countMethod(calls, "chat.postMessage"); n != 9 {
		t.Errorf("%d messages posted; want 9", n)
	}
	if retries.Load() != 1 || waits.Load() < int64(time.Second) {
		t.Errorf("told of %d retries and %v waited; want 1 retry after a wait of at least 1s (the metrics)", retries.Load(), time.Duration(waits.Load()))
	}
}

// TestRateLimitedUpdate: a chat.update answered 429 is retried after Retry-After, so the
// root message still ends showing the run's last state. The 429 hits the update of the
// last event that changes the root: dropping it would leave the root one state behind.
func TestRateLimitedUpdate(t *testing.T) {
	t.Parallel()
	evs := runEvents(t)
	// play notifies the events up to limitAt (all when -1) one at a time, rate-limiting
	// the update made from event limitAt; it returns the root's last blocks and the events
	// after which an update was made. Ending there leaves no later event to repair a
	// dropped update.
	play := func(limitAt int) (json.RawMessage, []int) {
		f := newFakeSlack(t)
		b, _ := newTestBot(t, testConfig(f.GetAPIURL()), openStore(t, filepath.Join(t.TempDir(), "db")), &fakeExec{})
		b.charts = false
		var at []int
		for i, ev := range evs {
			if limitAt >= 0 && i > limitAt {
				break
			}
			if i == limitAt {
				f.Mu.Lock()
				f.Limited["chat.update"] = 1
				f.Mu.Unlock()
			}
			before := countMethod(f.Calls(), "chat.update")
			b.Notify(context.Background(), ev)
			b.Flush(t.Context())
			if countMethod(f.Calls(), "chat.update") > before {
				at = append(at, i)
			}
		}
		var last json.RawMessage
		for _, c := range f.Calls() {
			if c.Method == "chat.update" {
				last = c.Blocks
			}
		}
		return last, at
	}
	want, at := play(-1)
	if len(at) == 0 {
		t.Fatal("the run's root was never updated")
	}
	got, _ := play(at[len(at)-1])
	if string(got) != string(want) {
		t.Errorf("after a rate-limited chat.update the root shows\n%s\nwant\n%s", got, want)
	}
}

// TestRateLimitedForAMinuteAcrossARestart: Slack answers every call 429 "Retry-After: 60"
// for a minute in the middle of a run, and the server restarts within that minute. Every
// post still arrives, once, in order, in the run's thread, and no call goes out before
// the minute is over. (The bot's clock runs 60 times faster than the real one: the minute
// lasts 1 s of the test, time enough on a loaded machine for the restart to fall inside it;
// the bot honours the full 60 s it was told.)
func TestRateLimitedForAMinuteAcrossARestart(t *testing.T) {
	t.Parallel()
	clock := newFastClock(60)
	f := newFakeSlack(t)
	f.Now = clock.Now
	var limitFrom, limitTo time.Time
	f.Limit = func() int {
		if now := clock.Now(); !now.Before(limitFrom) && now.Before(limitTo) {
			return 60
		}
		return 0
	}
	cfg := testConfig(f.GetAPIURL())
	dbPath := filepath.Join(t.TempDir(), "db")
	open := func() *Bot {
		client, err := NewClient(cfg.Slack)
		if err != nil {
			t.Fatal(err)
		}
		b, err := New(Options{Config: cfg, Client: client, Commands: &fakeExec{}, Store: openStore(t, dbPath), Logger: quiet, Clock: clock, NoCharts: true})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	evs := runEvents(t)
	b := open()
	replay(t, b, evs[:3]) // the root is up
	f.Mu.Lock()
	limitFrom, limitTo = clock.Now(), clock.Now().Add(time.Minute)
	f.Mu.Unlock()
	half := len(evs) / 2
	for _, ev := range evs[3:half] {
		b.Notify(context.Background(), ev)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	b.Close(ctx) // the server stops within the minute, its posts still waiting
	cancel()
	if clock.Now().After(limitTo) {
		t.Fatal("the test was too slow: the minute was over before the restart")
	}
	b = open()
	defer b.Close(context.Background())
	for _, ev := range evs[half:] {
		b.Notify(context.Background(), ev)
	}
	b.Flush(t.Context())

	f.Mu.Lock()
	rejected := f.Rejected
	f.Mu.Unlock()
	if rejected == 0 {
		t.Fatal("Slack never answered 429")
	}
	calls := f.Calls()
	var root call
	var replies []string
	for _, c := range calls {
		if !c.At.Before(limitFrom) && c.At.Before(limitTo) {
			t.Errorf("%s %q went out %s into the minute Slack asked to wait", c.Method, c.Text, c.At.Sub(limitFrom))
		}
		switch {
		case c.Method == "chat.postMessage" && c.ThreadTS == "" && strings.Contains(c.Text, "1a2b3c4"):
			if root.TS != "" {
				t.Errorf("a second root %q", c.Text)
			}
			root = c
		case c.Method == "chat.postMessage" && c.ThreadTS != "":
			if c.ThreadTS != root.TS {
				t.Errorf("reply %q in thread %q, want the run's %q", c.Text, c.ThreadTS, root.TS)
			}
			replies = append(replies, c.Text)
		case c.Method == "chat.update" && (c.TS != root.TS || c.Channel != "C0DEPLOYS"):
			t.Errorf("chat.update of %s in %s, want the root %s in C0DEPLOYS", c.TS, c.Channel, root.TS)
		}
	}
	want := []string{
		"papi 1a2b3c4 passed sandbox1 in 10s",
		"papi 1a2b3c4 passed sandbox2 in 15s",
		"papi 1a2b3c4 is ready for prod3: waiting for promotion",
		"alice promoted papi 1a2b3c4 to prod3",
		"papi 1a2b3c4 failed in prod3: tests failed on p3b: exit status 1; rolled back 2 hosts",
	}
	if !equalStrings(want, replies) {
		t.Errorf("thread replies, in order:\n%s\nwant each once:\n%s", strings.Join(replies, "\n"), strings.Join(want, "\n"))
	}
	var last call
	for _, c := range calls {
		if c.Method == "chat.update" {
			if !last.At.IsZero() && c.At.Sub(last.At) < 900*time.Millisecond {
				t.Errorf("two edits of the root %s apart; want at most one a second", c.At.Sub(last.At))
			}
			last = c
		}
	}
	if !strings.Contains(string(last.Blocks), "rolled back") {
		t.Errorf("the root ends showing %s; want the run's last state", last.Text)
	}
}

// TestRepliesOnceWhenSlacksAnswerIsLost: Slack carries out each reply and the chart's
// share but the connection is cut before its answer arrives. The bot tries again, finds
// the first try in the thread (by the reply's metadata, the chart by its file name) and
// sends nothing twice; the thread reads as it does when nothing is lost.
func TestRepliesOnceWhenSlacksAnswerIsLost(t *testing.T) {
	t.Parallel()
	f := newFakeSlack(t)
	seen := map[string]bool{}
	f.Lose = func(c call) bool { // the first answer of every reply and file share
		if c.Method == "chat.postMessage" && c.ThreadTS == "" {
			return false
		}
		key := c.Method + c.Text // (a share's text names its file, a new one each try)
		if c.Method == "files.completeUploadExternal" {
			key = c.Method
		}
		lost := !seen[key]
		seen[key] = true
		return lost
	}
	b, _ := newTestBot(t, testConfig(f.GetAPIURL()), openStore(t, filepath.Join(t.TempDir(), "db")), &fakeExec{})
	replay(t, b, runEvents(t))
	if f.Lost != 6 {
		t.Fatalf("%d answers lost; want the 5 replies' and the chart's", f.Lost)
	}
	var summary []string
	for _, c := range f.Calls() {
		if c.Method == "chat.postMessage" && c.ThreadTS != "" {
			summary = append(summary, c.Text)
		}
		if c.Method == "files.completeUploadExternal" {
			summary = append(summary, "file: "+c.Text)
		}
	}
	want := []string{
		"papi 1a2b3c4 passed sandbox1 in 10s",
		"papi 1a2b3c4 passed sandbox2 in 15s",
		`file: [{"id":"F000004","title":"canary vs baseline: sandbox2"}]`,
		"papi 1a2b3c4 is ready for prod3: waiting for promotion",
		"alice promoted papi 1a2b3c4 to prod3",
		"papi 1a2b3c4 failed in prod3: tests failed on p3b: exit status 1; rolled back 2 hosts",
	}
	if !equalStrings(want, summary) {
		t.Errorf("thread replies:\n%s\nwant each once:\n%s", strings.Join(summary, "\n"), strings.Join(want, "\n"))
	}
}

// TestRootOnceWhenSlacksAnswerIsLost: the first answer to a run's root post is lost (the
// call carried out, the connection cut). The try after it finds the root in the channel by
// its metadata (the channel named by name: found by conversations.list; by ID: at once) and
// threads under it: one root, every reply under it, chat.update of that root only. Without
// the scopes to read the channel the root is posted again (the warning says which to add).
func TestRootOnceWhenSlacksAnswerIsLost(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, channel string
		unscoped      []string
		roots         int
	}{
		{"channel by name", "#deploys", nil, 1},
		{"channel by ID", "C0DEPLOYS", nil, 1},
		{"no conversations.list scope", "#deploys", []string{"conversations.list"}, 2},
		{"no history scope", "C0DEPLOYS", []string{"conversations.history"}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeSlack(t)
			lost := false
			f.Lose = func(c call) bool {
				if c.Method == "chat.postMessage" && c.ThreadTS == "" && !lost {
					lost = true
					return true
				}
				return false
			}
			f.Unscoped = map[string]bool{}
			for _, m := range tc.unscoped {
				f.Unscoped[m] = true
			}
			cfg := testConfig(f.GetAPIURL())
			cfg.Apps[0].Slack.Channel = tc.channel
			b, _ := newTestBot(t, cfg, openStore(t, filepath.Join(t.TempDir(), "db")), &fakeExec{})
			replay(t, b, runEvents(t))
			if f.Lost != 1 {
				t.Fatalf("%d answers lost, want the root's", f.Lost)
			}
			var roots []call
			threads := map[string]int{}
			for _, c := range f.Calls() {
				switch {
				case c.Method == "chat.postMessage" && c.ThreadTS == "" && strings.Contains(c.Text, "locked"):
					// the lock: a region's notice, not the run's
				case c.Method == "chat.postMessage" && c.ThreadTS == "":
					roots = append(roots, c)
				case c.Method == "chat.postMessage":
					threads[c.ThreadTS]++
				case c.Method == "chat.update":
					threads["update "+c.TS]++
				}
			}
			if len(roots) != tc.roots {
				t.Fatalf("run roots posted: %d, want %d: %+v", len(roots), tc.roots, roots)
			}
			root := roots[len(roots)-1].TS
			if tc.roots == 1 {
				root = roots[0].TS
			}
			for ts, n := range threads {
				if ts != root && ts != "update "+root {
					t.Errorf("%d calls on %s, not on the root %s (calls %v)", n, ts, root, threads)
				}
			}
			if threads[root] < 5 || threads["update "+root] == 0 {
				t.Errorf("replies and edits of the root: %v, want the 5 replies and its edits", threads)
			}
		})
	}
}

// A failure whose message is one very long line (a test printing a whole document) still
// reaches Slack, in the thread and the root: the fake refuses, as Slack does for good
// (invalid_blocks), a text over Slack's 3000 characters.
func TestLongMessagesFitSlacksLimits(t *testing.T) {
	t.Parallel()
	f := newFakeSlack(t)
	b, _ := newTestBot(t, testConfig(f.GetAPIURL()), openStore(t, filepath.Join(t.TempDir(), "db")), &fakeExec{})
	evs := runEvents(t)
	long := "tests failed on p3b: FAIL TestLogin: got " + strings.Repeat("<tag a=\"b&c\">", 400) + "; rolled back 2 hosts"
	for _, i := range []int{17, 18} {
		evs[i].Message = long
		if evs[i].Stage != nil {
			evs[i].Stage.Message = long
		}
		evs[i].Run.Message = long
		for j := range evs[i].Run.Stages {
			if evs[i].Run.Stages[j].Region == "prod3" {
				evs[i].Run.Stages[j].Message = long
			}
		}
	}
	replay(t, b, evs)
	var failure, rootEdit bool
	for _, c := range f.Calls() {
		blocks := string(c.Blocks)
		switch {
		case c.Method == "chat.postMessage" && c.ThreadTS != "" && strings.Contains(blocks, "FAIL TestLogin"):
			failure = true
		case c.Method == "chat.update" && strings.Contains(blocks, "FAIL TestLogin"):
			rootEdit = true
		}
	}
	if !failure || !rootEdit {
		t.Errorf("the failure was posted in the thread: %v, and shown in the root: %v; want both", failure, rootEdit)
	}
}
