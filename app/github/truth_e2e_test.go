package github

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/immunity-app/immunity/app/github/githubtest"
	"github.com/immunity-app/immunity/checks"
	"github.com/immunity-app/immunity/pipeline"
	"github.com/immunity-app/immunity/store"
)

// shaB is the second release pushed in TestEndToEndGitHubTellsTheTruth.
const shaB = "2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e"

// TestEndToEndGitHubTellsTheTruth: on a real engine, a release superseded while it waited
// for production gets no production Deployment, and its check run there ends neutral
// naming the newer release; the older sandbox1 deployment is marked inactive when the
// newer one succeeds; Roll back is offered only where there is something to go back to;
// every button press is answered in its check run: refused (read access), done
// (promoted), failed (no previous release), each leaving the store as it was when
// nothing was done. Every request is one GitHub's description allows (the fake refuses
// the others).
func TestEndToEndGitHubTellsTheTruth(t *testing.T) {
	t.Parallel()
	contract := githubtest.LoadContract(t)
	h, eng, rep, dep := newEndToEnd(t, contract)
	fake := h.fake
	shaA := jsonField(t, fixture(t, "push.json", nil), "after")

	h.post(t, "push", "truth-push-a", fixture(t, "push.json", nil), "")
	waitStage(t, eng, 1, "prod3", store.StageAwaitingApproval)
	h.post(t, "push", "truth-push-b", fixture(t, "push.json", map[string]any{"after": shaB, "head_commit.id": shaB}), "")
	waitWaiting(t, eng, rep, 2, "prod3")
	waitRunState(t, eng, 1, store.RunSuperseded)
	last := waitCheck(t, rep, fake, "run/1/prod3", func(b map[string]any) bool { return b["conclusion"] == "neutral" })

	// (a) Neither release went to prod3: no Deployment there. (c) A's sandbox1 deployment
	// is inactive now that B's succeeded.
	states := map[string]string{}
	for _, d := range fake.Deployments() {
		states[d.Environment+"@"+d.Ref[:7]] = d.State()
	}
	if want := fmt.Sprint(map[string]string{"sandbox1@" + shaA[:7]: "inactive", "sandbox1@" + shaB[:7]: "success"}); fmt.Sprint(states) != want {
		t.Errorf("deployments %v, want %v", states, want)
	}
	// (b) A's prod3 check run ends neutral, naming B, without its Promote button.
	if title := outputOf(last, "title"); !strings.Contains(title, "superseded by "+shaB[:7]+" (run 2)") {
		t.Errorf("A's prod3 check run title %q; want it to name the newer release", title)
	}
	if a, _ := last["actions"].([]any); len(a) != 0 {
		t.Errorf("A's prod3 check run keeps buttons %v", a)
	}
	// (e) A was sandbox1's first release: no Roll back; B has A to go back to.
	if labels := buttons(lastCheck(fake, "run/1/sandbox1")); labels != "" {
		t.Errorf("sandbox1's first release offers %q", labels)
	}
	if labels := buttons(lastCheck(fake, "run/2/sandbox1")); labels != "Roll back" {
		t.Errorf("sandbox1's second release offers %q, want Roll back", labels)
	}

	// (d) A reader presses Promote: refused, said on the check run, nothing changed.
	press := func(id, who string, userID int, action string) {
		t.Helper()
		h.post(t, "check_run", id, fixture(t, "check_run.requested_action.json", map[string]any{
			"check_run.external_id": "run/2/prod3", "check_run.name": "immunity / prod3", "check_run.head_sha": shaB,
			"requested_action.identifier": action, "sender.login": who, "sender.id": userID, "installation.id": 1,
			"repository.full_name": "Codertocat/Hello-World", "repository.name": "Hello-World", "repository.owner.login": "Codertocat"}), "")
	}
	fake.SetPermission("reader", "read")
	before := snapshot(t, h.store)
	press("truth-press-read", "reader", 9001, "promote")
	waitCheck(t, rep, fake, "run/2/prod3", func(b map[string]any) bool {
		return strings.Contains(outputOf(b, "summary"), "reader pressed Promote: @reader '/promote prod3 --release "+shaB+"' needs write access")
	})
	if after := snapshot(t, h.store); after != before {
		t.Errorf("a refused press changed the store:\nbefore %s\nafter  %s", before, after)
	}

	// A writer presses Promote: done, and said.
	fake.SetPermission("writer", "write")
	press("truth-press-write", "writer", 9002, "promote")
	waitRunState(t, eng, 2, store.RunSucceeded)
	last = waitCheck(t, rep, fake, "run/2/prod3", func(b map[string]any) bool {
		return b["conclusion"] == "success" && strings.Contains(outputOf(b, "summary"), "writer pressed Promote: promoted papi "+shaB[:7]+" to prod3")
	})
	// B is prod3's first release: no Roll back button; a press anyway (an old payload)
	// fails, says why, and changes nothing.
	if labels := buttons(last); labels != "" {
		t.Errorf("prod3's first release offers %q", labels)
	}
	before = snapshot(t, h.store)
	press("truth-press-rollback", "writer", 9002, "rollback")
	waitCheck(t, rep, fake, "run/2/prod3", func(b map[string]any) bool {
		return strings.Contains(outputOf(b, "summary"), "writer pressed Roll back:") && strings.Contains(outputOf(b, "summary"), "no previous release")
	})
	if after := snapshot(t, h.store); after != before {
		t.Errorf("a failed rollback changed the store:\nbefore %s\nafter  %s", before, after)
	}
	if got := dep.state["prod3/p1"].Current; got != shaB {
		t.Errorf("prod3/p1 runs %q, want %s", got, shaB)
	}
	states = map[string]string{}
	for _, d := range fake.Deployments() {
		states[d.Environment+"@"+d.Ref[:7]] = d.State()
	}
	if states["prod3@"+shaB[:7]] != "success" || states["prod3@"+shaA[:7]] != "" {
		t.Errorf("prod3 deployments %v; want B's only, successful", states)
	}
	contract.ValidateAll(t, fake)
}

// snapshot is what a command could change in the store of papi: the runs and their
// stages (state, message, who approved, forced), each region's live releases and history,
// the locks and freezes.
func snapshot(t *testing.T, st *store.Store) string {
	t.Helper()
	ctx := context.Background()
	runs, err := st.Runs(ctx, "papi", false, 0)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, r := range runs {
		fmt.Fprintf(&b, "run %d %s %s;", r.ID, r.SHA[:7], r.State)
		for _, s := range r.Stages {
			fmt.Fprintf(&b, " %s=%s(%s)[%s forced=%v]", s.Region, s.State, s.Message, s.ApprovedBy, s.Forced)
		}
		b.WriteString("; ")
	}
	for _, region := range []string{"sandbox1", "prod3"} {
		live, err := st.Live(ctx, "papi", region)
		if err != nil {
			t.Fatal(err)
		}
		hist, err := st.History(ctx, "papi", region, 100)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s live=%v history=%d; ", region, live, len(hist))
	}
	locks, err := st.Locks(ctx, "papi")
	if err != nil {
		t.Fatal(err)
	}
	freezes, err := st.Freezes(ctx, "papi", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&b, "locks=%d freezes=%d", len(locks), len(freezes))
	return b.String()
}

func waitStage(t *testing.T, eng *pipeline.Engine, runID int64, region string, state store.StageState) {
	t.Helper()
	waitUntil(t, fmt.Sprintf("run %d %s %s", runID, region, state), func() (bool, string) {
		r, err := eng.Run(context.Background(), runID)
		for _, s := range r.Stages {
			if s.Region == region && s.State == state {
				return true, ""
			}
		}
		return false, fmt.Sprint(r, err)
	})
}

// waitWaiting waits until the pipeline is at rest with a run waiting for promotion to
// region: the stage waits, the run says so (written just after the stage, so a look
// between the two sees a stage waiting in a running run), and the reporter has sent
// every check run update queued. Only then does nothing change on its own, and a
// snapshot can show what a command changed.
func waitWaiting(t *testing.T, eng *pipeline.Engine, rep *checks.Reporter, runID int64, region string) {
	t.Helper()
	waitStage(t, eng, runID, region, store.StageAwaitingApproval)
	waitRunState(t, eng, runID, store.RunWaiting)
	flushReports(t, rep)
}

func waitRunState(t *testing.T, eng *pipeline.Engine, runID int64, state store.RunState) {
	t.Helper()
	waitUntil(t, fmt.Sprintf("run %d %s", runID, state), func() (bool, string) {
		r, err := eng.Run(context.Background(), runID)
		return err == nil && r.State == state, fmt.Sprint(r, err)
	})
}

// waitCheck waits until the last body sent for a check run (by external id) satisfies ok.
func waitCheck(t *testing.T, rep *checks.Reporter, fake *githubtest.Server, externalID string, ok func(map[string]any) bool) map[string]any {
	t.Helper()
	var b map[string]any
	waitUntil(t, "check run "+externalID, func() (bool, string) {
		flushReports(t, rep)
		b = lastCheck(fake, externalID)
		return b != nil && ok(b), fmt.Sprint(b)
	})
	return b
}

func waitUntil(t *testing.T, what string, ok func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		done, state := ok()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("never: %s; last: %s", what, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// lastCheck is the last body sent (created or updated) for a check run by external id.
// lastCheck is the last body sent for a stage's check runs: externalID's (run/ID/REGION)
// or a later attempt's (run/ID/REGION/N).
func lastCheck(fake *githubtest.Server, externalID string) map[string]any {
	var last map[string]any
	for _, r := range fake.Requests() {
		if strings.Contains(r.Path, "/check-runs") && r.Method != "GET" {
			if m := r.JSON(); m["external_id"] == externalID || strings.HasPrefix(fmt.Sprint(m["external_id"]), externalID+"/") {
				last = m
			}
		}
	}
	return last
}

func outputOf(b map[string]any, field string) string {
	o, _ := b["output"].(map[string]any)
	s, _ := o[field].(string)
	return s
}

func buttons(b map[string]any) string {
	var out []string
	as, _ := b["actions"].([]any)
	for _, a := range as {
		m, _ := a.(map[string]any)
		out = append(out, fmt.Sprint(m["label"]))
	}
	return strings.Join(out, ", ")
}
