package store

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRunsStagesAndHostSteps(t *testing.T) {
	engines(t, func(t *testing.T, db string) {
		ctx := t.Context()
		s := open(t, db)
		r, err := s.CreateRun(ctx, Run{App: "papi", SHA: "1a2b3c", Trigger: "push", State: RunBuilding}, []string{"sandbox1", "prod3"},
			map[string][]string{"sandbox1": {"h1"}, "prod3": {"h1", "h2"}})
		if err != nil {
			t.Fatal(err)
		}
		other, err := s.CreateRun(ctx, Run{App: "papi", SHA: "4d5e6f", State: RunBuilding}, []string{"sandbox1"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if other.ID <= r.ID || other.Stages[0].ID <= r.Stages[1].ID {
			t.Fatalf("ids do not grow: run %d then %d, stage %d then %d", r.ID, other.ID, r.Stages[1].ID, other.Stages[0].ID)
		}
		prod := r.Stages[1]
		if err := s.UpdateStage(ctx, prod.ID, StageUpdate{State: StageDeploying, Start: true, OnlyIf: []StageState{StagePending, StageApproved}}); err != nil {
			t.Fatal(err)
		}
		err = s.UpdateStage(ctx, prod.ID, StageUpdate{State: StageDeploying, OnlyIf: []StageState{StagePending}})
		if !errors.Is(err, ErrStateChanged) {
			t.Fatalf("a stage moved on from pending changed again: %v", err)
		}
		if err := s.SetHostStep(ctx, prod.ID, "h1", HostDone, "0ff1ce", "live"); err != nil {
			t.Fatal(err)
		}
		if err := s.UpdateStage(ctx, prod.ID, StageUpdate{State: StageSucceeded, Tests: "ok", Verdict: `{"v":"pass"}`, Finish: true}); err != nil {
			t.Fatal(err)
		}
		if err := s.SetHostStep(ctx, prod.ID, "h2", HostUploading, "", "uploading"); !errors.Is(err, ErrStateChanged) {
			t.Fatalf("a host step of a finished stage: %v; want ErrStateChanged", err)
		}
		if err := s.SetRunState(ctx, r.ID, RunSucceeded, "done"); err != nil {
			t.Fatal(err)
		}
		if err := s.SetRunSHA(ctx, other.ID, "7a8b9c", "subject", "ada"); err != nil {
			t.Fatal(err)
		}
		got, err := s.Run(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		st := got.Stages[1]
		if got.State != RunSucceeded || st.State != StageSucceeded || st.Tests != "ok" || st.Started.IsZero() || st.Finished.IsZero() ||
			st.Hosts[0].Step != HostDone || st.Hosts[0].PrevSHA != "0ff1ce" || st.Hosts[1].Step != HostPending {
			t.Fatalf("run after updates: %+v", got)
		}
		active, err := s.Runs(ctx, "papi", true, 0)
		if err != nil || len(active) != 1 || active[0].ID != other.ID || active[0].SHA != "7a8b9c" {
			t.Fatalf("active runs: %+v %v", active, err)
		}
		if all, err := s.Runs(ctx, "", false, 1); err != nil || len(all) != 1 || all[0].ID != other.ID {
			t.Fatalf("newest run: %+v %v", all, err)
		}
		if err := s.ResetHostSteps(ctx, prod.ID); err != nil {
			t.Fatal(err)
		}
		got, _ = s.Run(ctx, r.ID)
		if h := got.Stages[1].Hosts[0]; h.Step != HostPending || h.PrevSHA != "" {
			t.Fatalf("after reset: %+v", h)
		}
	})
}

func TestLiveHistoryEventsAndAudit(t *testing.T) {
	engines(t, func(t *testing.T, db string) {
		ctx := t.Context()
		s := open(t, db)
		for _, sha := range []string{"a1", "b2"} {
			if err := s.SetLive(ctx, "papi", "prod3", "h1", sha); err != nil {
				t.Fatal(err)
			}
			if err := s.AddHistory(ctx, HistoryEntry{App: "papi", Region: "prod3", SHA: sha, Action: "deploy", RunID: 1}); err != nil {
				t.Fatal(err)
			}
		}
		if live, err := s.Live(ctx, "papi", "prod3"); err != nil || !cmp.Equal(live, map[string]string{"h1": "b2"}) {
			t.Fatalf("live: %v %v", live, err)
		}
		hist, err := s.History(ctx, "papi", "", 0)
		if err != nil || len(hist) != 2 || hist[0].SHA != "b2" {
			t.Fatalf("history, newest first: %+v %v", hist, err)
		}
		for i := range 3 {
			if err := s.AddEvent(ctx, Event{RunID: 1, App: "papi", Kind: "stage", Message: fmt.Sprint(i)}); err != nil {
				t.Fatal(err)
			}
		}
		evs, err := s.Events(ctx, 1, 0)
		if err != nil || len(evs) != 3 || evs[0].Message != "0" {
			t.Fatalf("events in order: %+v %v", evs, err)
		}
		if newest, err := s.Events(ctx, 0, 1); err != nil || len(newest) != 1 || newest[0].Message != "2" {
			t.Fatalf("newest event: %+v %v", newest, err)
		}
		if err := s.AddAudit(ctx, Audit{Actor: "ada", Via: "cli", Action: "promote", App: "papi", Outcome: "ok"}); err != nil {
			t.Fatal(err)
		}
		if au, err := s.Audits(ctx, "papi", 0); err != nil || len(au) != 1 || au[0].Actor != "ada" {
			t.Fatalf("audit: %+v %v", au, err)
		}
		if err := s.Writable(ctx); err != nil {
			t.Fatal(err)
		}
		if err := s.Writable(ctx); err != nil {
			t.Fatalf("second readiness write: %v", err)
		}
	})
}

// Replicas share one database: the same delivery arriving at several of them at once is
// acted on by exactly one.
func TestADeliveryIsFreshOnceAcrossStores(t *testing.T) {
	engines(t, func(t *testing.T, db string) {
		ctx := t.Context()
		var logs []*DeliveryLog
		for range 3 {
			l, err := open(t, db).OpenDeliveryLog(ctx)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
			logs = append(logs, l)
		}
		for round := range 20 {
			d := Delivery{ID: fmt.Sprintf("d%d", round), Event: "push", DedupeKey: fmt.Sprintf("push/%d", round)}
			var mu sync.Mutex
			fresh := 0
			var wg sync.WaitGroup
			for i, l := range logs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					d := d
					if i == 2 {
						d.ID += "-redelivered" // the same event under another delivery id
					}
					f, err := l.Record(ctx, d)
					if err != nil {
						t.Error(err)
					}
					mu.Lock()
					if f {
						fresh++
					}
					mu.Unlock()
				}()
			}
			wg.Wait()
			if fresh != 1 {
				t.Fatalf("round %d: %d stores took the delivery as fresh, want 1", round, fresh)
			}
		}
	})
}

// A stage and its run move together or not at all: a guard that fails changes neither.
func TestMoveStageAndRunIsAllOrNothing(t *testing.T) {
	engines(t, func(t *testing.T, db string) {
		ctx := t.Context()
		s := open(t, db)
		r, err := s.CreateRun(ctx, Run{App: "papi", SHA: "1a2b3c", Trigger: "push", State: RunRunning, Message: "in sandbox1"}, []string{"prod3"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		prod := r.Stages[0]
		if err := s.UpdateStage(ctx, prod.ID, StageUpdate{State: StageApproved, Message: "promoted by ada"}); err != nil {
			t.Fatal(err)
		}
		err = s.MoveStageAndRun(ctx, prod.ID, StageUpdate{State: StageAwaitingApproval, Message: "waiting for promotion", OnlyIf: []StageState{StagePending}},
			r.ID, RunWaiting, "waiting for promotion to prod3")
		if !errors.Is(err, ErrStateChanged) {
			t.Fatalf("a stage no longer pending was moved: %v; want ErrStateChanged", err)
		}
		got, err := s.Run(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State != RunRunning || got.Message != "in sandbox1" || got.Stages[0].State != StageApproved || got.Stages[0].Message != "promoted by ada" {
			t.Fatalf("a failed guard changed the store: run %s %q, stage %s %q", got.State, got.Message, got.Stages[0].State, got.Stages[0].Message)
		}

		err = s.MoveStageAndRun(ctx, prod.ID, StageUpdate{State: StageDeploying, Message: "deploying", Start: true}, r.ID+100, RunRunning, "in prod3")
		if err == nil {
			t.Fatal("a stage was moved with a run that does not exist")
		}
		if got, _ := s.Run(ctx, r.ID); got.Stages[0].State != StageApproved || !got.Stages[0].Started.IsZero() {
			t.Fatalf("the stage changed without its run: %+v", got.Stages[0])
		}

		if err := s.UpdateStage(ctx, prod.ID, StageUpdate{State: StagePending}); err != nil {
			t.Fatal(err)
		}
		if err := s.MoveStageAndRun(ctx, prod.ID, StageUpdate{State: StageAwaitingApproval, Message: "waiting for promotion", OnlyIf: []StageState{StagePending}},
			r.ID, RunWaiting, "waiting for promotion to prod3"); err != nil {
			t.Fatal(err)
		}
		got, _ = s.Run(ctx, r.ID)
		if got.State != RunWaiting || got.Message != "waiting for promotion to prod3" || got.Stages[0].State != StageAwaitingApproval || got.Stages[0].Message != "waiting for promotion" {
			t.Fatalf("after the move: run %s %q, stage %s %q", got.State, got.Message, got.Stages[0].State, got.Stages[0].Message)
		}
	})
}
