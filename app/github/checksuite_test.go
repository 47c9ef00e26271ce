package github

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/immunity-app/immunity/app/github/githubtest"
	"github.com/immunity-app/immunity/store"
)

// suiteSHA is the head commit of the check_suite fixture.
const suiteSHA = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"

// storeRun records a run of papi at sha whose stages end in the given states.
func storeRun(t *testing.T, st *store.Store, sha string, states map[string]store.StageState) store.Run {
	t.Helper()
	ctx := context.Background()
	run, err := st.CreateRun(ctx, store.Run{App: "papi", SHA: sha, Trigger: "push", State: store.RunFailed},
		[]string{"sandbox1", "prod3"}, map[string][]string{"sandbox1": {"s1"}, "prod3": {"p1"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range run.Stages {
		if state, ok := states[s.Region]; ok {
			if err := st.UpdateStage(ctx, s.ID, store.StageUpdate{State: state}); err != nil {
				t.Fatal(err)
			}
		}
	}
	return run
}

// TestCheckSuiteRerun: "Re-run all checks" re-runs the failed stages of the newest run of
// the suite's commit, for a writer only; a commit without a failed stage re-runs nothing.
func TestCheckSuiteRerun(t *testing.T) {
	t.Parallel()
	contract := githubtest.LoadContract(t)
	h := newHarness(t)
	storeRun(t, h.store, suiteSHA, map[string]store.StageState{"sandbox1": store.StageFailed, "prod3": store.StageSkipped}) // an older run
	newest := storeRun(t, h.store, suiteSHA, map[string]store.StageState{"sandbox1": store.StageFailed, "prod3": store.StageSkipped})
	storeRun(t, h.store, "1111111111111111111111111111111111111111", map[string]store.StageState{"sandbox1": store.StageFailed}) // another commit

	h.fake.SetPermission("Codertocat", "write")
	body := fixture(t, "check_suite.rerequested.json", map[string]any{"sender.login": "Codertocat", "sender.type": "User"})
	if code := h.post(t, "check_suite", "s1", body, ""); code != 202 {
		t.Fatalf("check_suite: %d", code)
	}
	// The re-run is the command rerun, judged by the access grants like any other.
	if reqs := h.cmds.Requests(); len(reqs) != 1 || reqs[0].Text != "rerun papi sandbox1 --run "+itoa(newest.ID) || reqs[0].Actor.ID != "github:49795351" || reqs[0].Actor.Via != "button" {
		t.Errorf("commands %+v; want rerun papi sandbox1 --run %d by github:49795351 (button)", reqs, newest.ID)
	}
	var want []string
	if d := cmp.Diff(want, h.eng.Calls()); d != "" {
		t.Errorf("engine calls (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"GET " + hello + "/collaborators/Codertocat/permission"}, h.fake.Calls()); d != "" {
		t.Errorf("GitHub calls (-want +got):\n%s", d)
	}
	contract.ValidateAll(t, h.fake)

	h.fake.SetPermission("octocat", "read")
	h.post(t, "check_suite", "s2", fixture(t, "check_suite.rerequested.json", map[string]any{"sender.login": "octocat"}), "")
	refused := `audit octocat (button) rerun papi/sandbox1 "run ` + itoa(newest.ID) + `" refused: GitHub permission "read" on Codertocat/Hello-World; write, maintain or admin needed`
	told := "answer " + itoa(newest.ID) + " sandbox1: octocat pressed Re-run all checks: @octocat re-running needs write access to Codertocat/Hello-World; you have read. Nothing was done."
	if d := cmp.Diff(append(want, refused, told), h.eng.Calls()); d != "" {
		t.Errorf("engine calls after a reader's re-run (-want +got):\n%s", d)
	}

	// A suite whose commit has no run, and a completed suite, change nothing.
	h.post(t, "check_suite", "s3", fixture(t, "check_suite.rerequested.json", map[string]any{"check_suite.head_sha": "2222222222222222222222222222222222222222"}), "")
	h.post(t, "check_suite", "s4", fixture(t, "check_suite.rerequested.json", map[string]any{"action": "completed"}), "")
	if n := len(h.eng.Calls()); n != 2 || len(h.cmds.Requests()) != 1 {
		t.Errorf("engine calls %v; want nothing more", h.eng.Calls())
	}
	for id, state := range h.deliveries(t) {
		if state != "done" {
			t.Errorf("delivery %s: %s", id, state)
		}
	}
}

func itoa(n int64) string { return fmt.Sprint(n) }
