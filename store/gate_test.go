package store

import (
	"errors"
	"fmt"
	"testing"
)

// TestGateRequestIsRecordedOnceAndDecidedOnce: a request is stored once however often it
// arrives; at most MaxGateReports status reports go to the outbox; it is decided once,
// its review added to the outbox once, and a second decision changes nothing; all of it
// survives reopening the file.
func TestGateRequestIsRecordedOnceAndDecidedOnce(t *testing.T) {
	engines(t, testGateRequestIsRecordedOnceAndDecidedOnce)
}

func testGateRequestIsRecordedOnceAndDecidedOnce(t *testing.T, path string) {
	ctx := t.Context()
	s := open(t, path)
	req := GateRequest{Repo: "Acme/Papi", Installation: 42, Environment: "production", DeploymentID: 7, SHA: "abc",
		CallbackURL: "https://api.github.com/repos/acme/papi/actions/runs/99/deployment_protection_rule", ActionsRunID: 99, App: "papi"}
	g, fresh, err := s.AddGateRequest(ctx, req)
	if err != nil || !fresh || g.ID == 0 || g.State != GateWaiting || g.Repo != "acme/papi" {
		t.Fatalf("first: %+v fresh=%v err=%v", g, fresh, err)
	}
	again, fresh, err := s.AddGateRequest(ctx, req)
	if err != nil || fresh || again.ID != g.ID {
		t.Fatalf("second: %+v fresh=%v err=%v", again, fresh, err)
	}
	other := req
	other.DeploymentID = 8
	if o, fresh, err := s.AddGateRequest(ctx, other); err != nil || !fresh || o.ID == g.ID {
		t.Fatalf("another deployment of the run: %+v fresh=%v err=%v", o, fresh, err)
	}
	item := func(what string) OutboxItem {
		return OutboxItem{Stream: fmt.Sprintf("github/gate/%d", g.ID), Kind: "github.gate", Dedupe: fmt.Sprintf("github/gate/%d/%s", g.ID, what), Payload: "{}"}
	}
	for i := range MaxGateReports {
		if err := s.ReportGate(ctx, g.ID, fmt.Sprintf("waiting %d", i), item("report")); err != nil {
			t.Fatalf("report %d: %v", i+1, err)
		}
	}
	if err := s.ReportGate(ctx, g.ID, "one too many", item("report")); !errors.Is(err, ErrReportsUsed) {
		t.Fatalf("report 11: %v, want ErrReportsUsed", err)
	}
	if err := s.DecideGate(ctx, g.ID, GateWaiting, "", item("decision")); err == nil {
		t.Fatal("waiting accepted as a decision")
	}
	if err := s.DecideGate(ctx, g.ID, GateApproved, "passed sandbox2", item("decision")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = open(t, path)
	if err := s.DecideGate(ctx, g.ID, GateRejected, "too late", item("decision2")); !errors.Is(err, ErrDecided) {
		t.Fatalf("second decision: %v, want ErrDecided", err)
	}
	if err := s.ReportGate(ctx, g.ID, "after", item("report")); !errors.Is(err, ErrDecided) {
		t.Fatalf("report after the decision: %v, want ErrDecided", err)
	}
	got, err := s.GateRequest(ctx, g.ID)
	if err != nil || got.State != GateApproved || got.Reason != "passed sandbox2" || got.Reports != MaxGateReports || got.LastReport != "waiting 9" || got.Decided.IsZero() {
		t.Fatalf("stored: %+v %v", got, err)
	}
	heads, err := s.OutboxHeads(ctx, "github/gate/", 10)
	if err != nil || len(heads) != 1 || heads[0].Dedupe != item("report").Dedupe+"/1" {
		t.Fatalf("outbox heads: %+v %v", heads, err)
	}
	l := holdLease(t, s, "outbox/github")
	n := 0
	for {
		heads, err := s.OutboxHeads(ctx, fmt.Sprintf("github/gate/%d", g.ID), 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(heads) == 0 {
			break
		}
		n++
		if err := s.OutboxDone(ctx, l, heads[0].ID, OutboxSent, ""); err != nil {
			t.Fatal(err)
		}
	}
	if n != MaxGateReports+1 {
		t.Fatalf("outbox held %d items, want %d reports and one review", n, MaxGateReports)
	}
	waiting, err := s.GateRequests(ctx, GateWaiting)
	if err != nil || len(waiting) != 1 || waiting[0].DeploymentID != 8 {
		t.Fatalf("waiting: %+v %v", waiting, err)
	}
	// The review of a request is added once ever, even past its state.
	if err := s.DecideGate(ctx, waiting[0].ID, GateApproved, "", item("decision")); err == nil {
		t.Fatal("a second review under the same dedupe key was added")
	}
	if w, _ := s.GateRequests(ctx, GateWaiting); len(w) != 1 {
		t.Fatalf("a failed decision changed the request: %+v", w)
	}
}
