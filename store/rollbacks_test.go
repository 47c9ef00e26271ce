package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestRollbackPlanSurvivesReopenAndEndsItsStage(t *testing.T) {
	engines(t, func(t *testing.T, path string) {
		ctx := context.Background()
		s := open(t, path)
		r, err := s.CreateRun(ctx, Run{App: "papi", SHA: "new0000", State: RunRunning}, []string{"prod3", "prod4"},
			map[string][]string{"prod3": {"host1", "host2"}, "prod4": {"host1"}})
		if err != nil {
			t.Fatal(err)
		}
		st := r.Stages[0]
		if err := s.UpdateStage(ctx, st.ID, StageUpdate{State: StageTesting}); err != nil {
			t.Fatal(err)
		}
		if err := s.SetHostLive(ctx, st.ID, "host1", HostRestarting, "restarting", "papi", "prod3", "new0000"); err != nil {
			t.Fatal(err)
		}
		rb, err := s.PlanRollback(ctx, Rollback{App: "papi", Region: "prod3", RunID: r.ID, StageID: st.ID, Actor: "immunity (automatic)",
			Reason: "tests failed on host1", Hosts: []RollbackHost{{Host: "host1", From: "new0000", To: "old0000"}}})
		if err != nil {
			t.Fatal(err)
		}
		// A second plan for the same stage is refused: it is no longer deploying.
		if _, err := s.PlanRollback(ctx, Rollback{App: "papi", Region: "prod3", RunID: r.ID, StageID: st.ID}); !errors.Is(err, ErrStateChanged) {
			t.Fatalf("second plan: %v; want ErrStateChanged", err)
		}
		s.Close()

		s = open(t, path)
		defer s.Close()
		open, err := s.OpenRollbacks(ctx)
		if err != nil || len(open) != 1 || open[0].ID != rb.ID || len(open[0].Hosts) != 1 || open[0].Hosts[0].Step != HostPending {
			t.Fatalf("open rollbacks after reopen: %+v %v", open, err)
		}
		got, _ := s.Run(ctx, r.ID)
		if got.Stages[0].State != StageRollingBack || got.Stages[0].Hosts[0].Step != HostRollingBack || !got.Stages[0].State.Active() {
			t.Fatalf("stage after the plan: %+v", got.Stages[0])
		}
		if err := s.SetRollbackStep(ctx, rb, "host1", HostRestarting, "restarting"); err != nil {
			t.Fatal(err)
		}
		if live, _ := s.Live(ctx, "papi", "prod3"); live["host1"] != "old0000" {
			t.Fatalf("live after the switch back: %v", live)
		}
		if err := s.SetRollbackStep(ctx, rb, "host1", HostDone, "rolled back"); err != nil {
			t.Fatal(err)
		}
		if err := s.SetRollbackStep(ctx, rb, "host9", HostDone, ""); !errors.Is(err, ErrNotFound) {
			t.Fatalf("a host outside the plan: %v", err)
		}
		if err := s.FinishRollback(ctx, rb, RollbackDone, 1, "tests failed on host1; rolled back 1 host"); err != nil {
			t.Fatal(err)
		}
		got, _ = s.Run(ctx, r.ID)
		if got.State != RunFailed || got.Stages[0].State != StageRolledBack || got.Stages[0].Hosts[0].Step != HostRolledBack ||
			got.Stages[1].State != StageSkipped || got.Stages[0].Hosts[1].Step != HostPending {
			t.Fatalf("after the rollback: %+v", got)
		}
		if open, _ := s.OpenRollbacks(ctx); len(open) != 0 {
			t.Fatalf("still open: %+v", open)
		}
		if h, _ := s.History(ctx, "papi", "prod3", 1); len(h) != 1 || h[0].SHA != "old0000" || h[0].Action != "rollback" {
			t.Fatalf("history: %+v", h)
		}
	})
}

func TestOutboxKeepsOrderCoalescesAndDedupes(t *testing.T) {
	engines(t, func(t *testing.T, path string) {
		ctx := context.Background()
		s := open(t, path)
		defer s.Close()
		l := holdLease(t, s, "outbox/test")
		add := func(it OutboxItem) bool {
			t.Helper()
			ok, err := s.Enqueue(ctx, it)
			if err != nil {
				t.Fatal(err)
			}
			return ok
		}
		add(OutboxItem{Stream: "slack/run/1", Kind: "root", Payload: "root"})
		add(OutboxItem{Stream: "slack/run/1", Kind: "post", Dedupe: "run/1/a", Payload: "a"})
		if add(OutboxItem{Stream: "slack/run/1", Kind: "post", Dedupe: "run/1/a", Payload: "a again"}) {
			t.Error("a post with a seen dedupe key was added again")
		}
		add(OutboxItem{Stream: "slack/edit/1", Kind: "edit", Coalesce: "slack/edit/1", Payload: "v1"})
		add(OutboxItem{Stream: "slack/edit/1", Kind: "edit", Coalesce: "slack/edit/1", Payload: "v2"})
		add(OutboxItem{Stream: "github/run/1", Kind: "run", Coalesce: "github/run/1", Payload: "g"})

		heads, err := s.OutboxHeads(ctx, "slack/", 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(heads) != 2 || heads[0].Payload != "root" || heads[1].Payload != "v2" {
			t.Fatalf("heads: %+v; want the root first, then the newest edit only", heads)
		}
		if err := s.OutboxRetry(ctx, l, heads[0].ID, time.Now().Add(time.Minute), "ratelimited"); err != nil {
			t.Fatal(err)
		}
		heads, _ = s.OutboxHeads(ctx, "slack/run/", 10)
		if len(heads) != 1 || heads[0].Payload != "root" || heads[0].Attempts != 1 || heads[0].NotBefore.Before(time.Now()) {
			t.Fatalf("a retried head still heads its stream, waiting: %+v", heads)
		}
		s.OutboxDone(ctx, l, heads[0].ID, OutboxSent, "")
		heads, _ = s.OutboxHeads(ctx, "slack/run/", 10)
		if len(heads) != 1 || heads[0].Payload != "a" {
			t.Fatalf("after the root: %+v", heads)
		}
		// Once the edit is sent, a new edit is a new item.
		edit, _ := s.OutboxHeads(ctx, "slack/edit/", 10)
		s.OutboxDone(ctx, l, edit[0].ID, OutboxSent, "")
		add(OutboxItem{Stream: "slack/edit/1", Kind: "edit", Coalesce: "slack/edit/1", Payload: "v3"})
		if edit, _ = s.OutboxHeads(ctx, "slack/edit/", 10); len(edit) != 1 || edit[0].Payload != "v3" {
			t.Fatalf("edit after a sent one: %+v", edit)
		}
		// A newer payload coalesced into an item while it was being sent is not lost: the
		// item is not marked sent, and the newer payload is the next to go.
		inFlight, _ := s.OutboxHeads(ctx, "slack/edit/", 10)
		add(OutboxItem{Stream: "slack/edit/1", Kind: "edit", Coalesce: "slack/edit/1", Payload: "v4"})
		if sent, err := s.OutboxDelivered(ctx, l, inFlight[0]); err != nil || sent {
			t.Fatalf("v3 marked sent (%v, %v) though v4 replaced it meanwhile", sent, err)
		}
		edit, _ = s.OutboxHeads(ctx, "slack/edit/", 10)
		if len(edit) != 1 || edit[0].Payload != "v4" {
			t.Fatalf("after v3 went out with v4 waiting: %+v", edit)
		}
		if sent, err := s.OutboxDelivered(ctx, l, edit[0]); err != nil || !sent {
			t.Fatalf("v4 not marked sent: %v, %v", sent, err)
		}
		if edit, _ = s.OutboxHeads(ctx, "slack/edit/", 10); len(edit) != 0 {
			t.Fatalf("edits left after v4: %+v", edit)
		}
		stats, err := s.OutboxStats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		depth := map[string]int{}
		for _, st := range stats {
			depth[st.Service] = st.Depth
		}
		if depth["slack"] != 1 || depth["github"] != 1 { // post a, and the github run
			t.Fatalf("stats %+v", stats)
		}
	})
}

// A stage's task that has not yet seen its cancellation cannot move a host of the ended
// stage into a step again: the step stays as the cancellation left it, and a switch it
// reports is still recorded as what the host runs.
func TestHostStepsOfAnEndedStageStayPut(t *testing.T) {
	engines(t, func(t *testing.T, path string) {
		ctx := context.Background()
		s := open(t, path)
		r, err := s.CreateRun(ctx, Run{App: "papi", SHA: "new0000", State: RunRunning}, []string{"prod3"},
			map[string][]string{"prod3": {"host1", "host2"}})
		if err != nil {
			t.Fatal(err)
		}
		st := r.Stages[0]
		if err := s.UpdateStage(ctx, st.ID, StageUpdate{State: StageMonitoring}); err != nil {
			t.Fatal(err)
		}
		if err := s.SetHostStep(ctx, st.ID, "host1", HostMonitoring, "", "monitoring"); err != nil {
			t.Fatal(err)
		}
		if err := s.FailStage(ctx, r.ID, st.ID, StageCancelled, RunCancelled, "cancelled: amy rolled prod3 back"); err != nil {
			t.Fatal(err)
		}
		for _, step := range []StepState{HostUploading, HostTesting, HostMonitoring, HostDone} {
			if err := s.SetHostStep(ctx, st.ID, "host2", step, "", string(step)); !errors.Is(err, ErrStateChanged) {
				t.Errorf("host2 -> %s after the stage was cancelled: %v; want ErrStateChanged", step, err)
			}
		}
		if err := s.SetHostLive(ctx, st.ID, "host2", HostRestarting, "restarting", "papi", "prod3", "new0000"); !errors.Is(err, ErrStateChanged) {
			t.Errorf("host2 switched after the stage was cancelled: %v; want ErrStateChanged", err)
		}
		got, err := s.Run(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]StepState{"host1": HostFailed, "host2": HostPending}
		for _, h := range got.Stages[0].Hosts {
			if h.Step != want[h.Host] {
				t.Errorf("%s is %s; want %s", h.Host, h.Step, want[h.Host])
			}
		}
		live, err := s.Live(ctx, "papi", "prod3")
		if err != nil {
			t.Fatal(err)
		}
		if live["host2"] != "new0000" {
			t.Errorf("live %v; the switch host2 reported must be recorded", live)
		}
	})
}
