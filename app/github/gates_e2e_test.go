package github

import (
	"context"
	"strings"
	"testing"

	"github.com/immunity-app/immunity/app/github/githubtest"
	"github.com/immunity-app/immunity/deployers"
	"github.com/immunity-app/immunity/pipeline"
	"github.com/immunity-app/immunity/pipeline/config"
	"github.com/immunity-app/immunity/store"
)

// shaS is the release seeded live everywhere before TestEndToEndGatesHoldOnGitHub.
const shaS = "5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e"

// TestEndToEndGatesHoldOnGitHub: on a real engine, with A failing its tests and B
// waiting for prod3 after passing sandbox1:
//   - `/deploy A to prod3` is refused, says A failed sandbox1, and changes nothing;
//   - "Re-run all checks" on A's commit is refused, naming B (already in sandbox1), said
//     on A's sandbox1 check run, and changes nothing;
//   - `/deploy A to prod3 --force` deploys (says deploying, not promoting), fails, is
//     rolled back, and B still waits for prod3;
//   - B promoted reaches prod3, but its run does not say "live in every region" while a
//     sandbox1 host runs another release.
func TestEndToEndGatesHoldOnGitHub(t *testing.T) {
	t.Parallel()
	contract := githubtest.LoadContract(t)
	ctx := context.Background()
	h, eng, rep, dep := newEndToEnd(t, contract, "6113728f27ae82c7b1a177c8d03f9e96e0adf246")
	fake := h.fake
	fake.SetPermission("Codertocat", "write")
	shaA := jsonField(t, fixture(t, "push.json", nil), "after")
	if _, err := eng.Seed(ctx, pipeline.Actor{ID: "engine", Name: "test", Via: "engine"}, "papi", shaS); err != nil {
		t.Fatal(err)
	}
	h.post(t, "push", "gates-push-a", fixture(t, "push.json", nil), "")
	waitRunState(t, eng, 1, store.RunFailed)
	h.post(t, "push", "gates-push-b", fixture(t, "push.json", map[string]any{"after": shaB, "head_commit.id": shaB}), "")
	waitWaiting(t, eng, rep, 2, "prod3")

	comment := func(id string, commentID int, text string) string {
		t.Helper()
		h.post(t, "issue_comment", id, fixture(t, "issue_comment.created.json", map[string]any{"comment.body": text, "comment.id": commentID, "installation.id": 1}), "")
		replies := fake.Find("POST " + hello + "/issues/1/comments")
		if len(replies) == 0 {
			t.Fatalf("no reply to %q", text)
		}
		body, _ := replies[len(replies)-1].JSON()["body"].(string)
		return body
	}
	before := snapshot(t, h.store)
	if r := comment("gates-deploy", 601, "/deploy "+shaA[:7]+" to prod3"); !strings.Contains(r, "it failed sandbox1") || !strings.Contains(r, "nothing was changed") {
		t.Errorf("deploy of a failed release answered %q", r)
	}
	if after := snapshot(t, h.store); after != before {
		t.Errorf("a refused deploy changed the store:\nbefore %s\nafter  %s", before, after)
	}

	h.post(t, "check_suite", "gates-rerun", fixture(t, "check_suite.rerequested.json", map[string]any{
		"check_suite.head_sha": shaA, "sender.login": "Codertocat", "sender.type": "User", "installation.id": 1}), "")
	waitCheck(t, rep, fake, "run/1/sandbox1", func(b map[string]any) bool {
		s := outputOf(b, "summary")
		return strings.Contains(s, "Codertocat pressed Re-run all checks: @Codertocat rerun sandbox1 of run 1") && strings.Contains(s, "refused by the pipeline's gates: the newer release "+shaB[:7]+" (run 2) is already in sandbox1")
	})
	if after := snapshot(t, h.store); after != before {
		t.Errorf("a refused re-run changed the store:\nbefore %s\nafter  %s", before, after)
	}
	if got := dep.state["sandbox1/s1"].Current; got != shaB {
		t.Errorf("sandbox1/s1 runs %q after the refused re-run, want B %s", got, shaB)
	}

	if r := comment("gates-force", 602, "/deploy "+shaA[:7]+" to prod3 --force"); !strings.Contains(r, "deploying papi "+shaA[:7]+" to prod3") || strings.Contains(r, "promot") {
		t.Errorf("forced deploy answered %q", r)
	}
	waitRunState(t, eng, 3, store.RunFailed)
	if got := stageState(t, eng, 2, "prod3"); got != store.StageAwaitingApproval {
		t.Errorf("after the failed forced deploy B's prod3 stage is %s; want it still waiting", got)
	}
	waitUntil(t, "prod3 back on S", func() (bool, string) {
		live, _ := h.store.Live(ctx, "papi", "prod3")
		return live["p1"] == shaS && dep.state["prod3/p1"].Current == shaS, snapshot(t, h.store)
	})

	// A sandbox1 host drifts to S behind the store's back; B then goes to prod3.
	dep.mu.Lock()
	dep.state["sandbox1/s1"] = deployersState(shaS, shaB)
	dep.mu.Unlock()
	if r := comment("gates-promote", 603, "/promote prod3 --release "+shaB[:7]); !strings.Contains(r, "promoted papi "+shaB[:7]+" to prod3") {
		t.Errorf("promote answered %q", r)
	}
	waitRunState(t, eng, 2, store.RunSucceeded)
	run, err := eng.Run(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(run.Message, "live in every region") || !strings.Contains(run.Message, "sandbox1") {
		t.Errorf("B's run says %q while sandbox1/s1 runs S", run.Message)
	}
	contract.ValidateAll(t, fake)
}

func stageState(t *testing.T, eng *pipeline.Engine, runID int64, region string) store.StageState {
	t.Helper()
	r, err := eng.Run(context.Background(), runID)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range r.Stages {
		if s.Region == region {
			return s.State
		}
	}
	t.Fatalf("run %d has no stage %s", runID, region)
	return ""
}

// deployersState is a host running cur, with prev before it.
func deployersState(cur, prev string) deployers.HostState {
	return deployers.HostState{Current: cur, Previous: prev, Releases: []string{cur, prev}}
}

// TestReRunButtonsNeedTheAccessGrants: "Re-run all checks" and a check run's "Re-run" are
// the command rerun, judged by the app's access grants (deploy) like a comment: a writer of
// the repository who is granted no deploy there is refused, told so on the check run, and
// nothing changes.
func TestReRunButtonsNeedTheAccessGrants(t *testing.T) {
	t.Parallel()
	contract := githubtest.LoadContract(t)
	h, eng, rep, _ := newEndToEndWith(t, contract, func(cfg *config.Config) {
		cfg.Apps[0].Access = &config.Access{NonProduction: []config.Grant{{Actions: []string{"lock", "unlock"}, GitHubUsers: []string{"Codertocat"}}}}
	}, "6113728f27ae82c7b1a177c8d03f9e96e0adf246")
	h.fake.SetPermission("Codertocat", "write")
	shaA := jsonField(t, fixture(t, "push.json", nil), "after")
	h.post(t, "push", "grants-push", fixture(t, "push.json", nil), "")
	waitRunState(t, eng, 1, store.RunFailed)
	before := snapshot(t, h.store)
	h.post(t, "check_suite", "grants-rerun", fixture(t, "check_suite.rerequested.json", map[string]any{
		"check_suite.head_sha": shaA, "sender.login": "Codertocat", "sender.type": "User", "installation.id": 1}), "")
	h.post(t, "check_run", "grants-rerun-one", fixture(t, "check_run.rerequested.json", map[string]any{
		"check_run.external_id": "run/1/sandbox1", "check_run.head_sha": shaA, "sender.login": "Codertocat", "installation.id": 1}), "")
	waitCheck(t, rep, h.fake, "run/1/sandbox1", func(b map[string]any) bool {
		s := outputOf(b, "summary")
		return strings.Contains(s, "Codertocat pressed Re-run all checks: @Codertocat Codertocat may not deploy papi/sandbox1") &&
			strings.Contains(s, "Codertocat pressed Re-run: @Codertocat Codertocat may not deploy papi/sandbox1")
	})
	if after := snapshot(t, h.store); after != before {
		t.Errorf("a re-run refused by the grants changed the store:\nbefore %s\nafter  %s", before, after)
	}
}
