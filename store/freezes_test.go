package store

import (
	"context"
	"testing"
	"time"
)

func TestFreezesHoldUntilTheyEndOrAreLifted(t *testing.T) { engines(t, testFreezes) }

func testFreezes(t *testing.T, database string) {
	ctx := context.Background()
	s := open(t, database)
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	s.SetClock(func() time.Time { return now })
	err := s.AddFreezes(ctx, []Freeze{
		{App: "papi", Region: "prod3", Until: now.Add(time.Hour), Reason: "launch", Actor: "ada", ActorID: "slack:T1/U1", Via: "slack"},
		{App: "papi", Region: "prod4", Until: now.Add(time.Hour), Reason: "launch", Actor: "ada", ActorID: "slack:T1/U1", Via: "slack"},
		{App: "", Until: now.Add(2 * time.Hour), Reason: "datacenter move", Actor: "bob", ActorID: "github:2"},
		{App: "other", Until: now.Add(3 * time.Hour), Reason: "theirs", Actor: "cy", ActorID: "github:3"},
	})
	if err != nil {
		t.Fatal(err)
	}
	fs, err := s.Freezes(ctx, "papi", now)
	if err != nil || len(fs) != 3 {
		t.Fatalf("papi's freezes = %+v, %v; want its two and the org-wide one", fs, err)
	}
	if f := fs[0]; f.Region != "prod3" || !f.Until.Equal(now.Add(time.Hour)) || f.ActorID != "slack:T1/U1" || !f.At.Equal(now) || !f.Covers("papi", "prod3") || f.Covers("papi", "prod4") {
		t.Fatalf("first freeze = %+v", f)
	}
	if !fs[2].Covers("anything", "any") {
		t.Fatal("an org-wide freeze does not cover every region")
	}
	if fs, _ := s.Freezes(ctx, "papi", now.Add(time.Hour)); len(fs) != 1 || fs[0].App != "" {
		t.Fatalf("after an hour: %+v; want only the org-wide one", fs)
	}
	lifted, err := s.LiftFreezes(ctx, "papi", []string{"prod4"}, now, "ada", "slack:T1/U1")
	if err != nil || len(lifted) != 1 || lifted[0].Region != "prod4" {
		t.Fatalf("lift prod4: %+v, %v", lifted, err)
	}
	if lifted, _ := s.LiftFreezes(ctx, "papi", []string{"prod4"}, now, "ada", "slack:T1/U1"); len(lifted) != 0 {
		t.Fatalf("lifted twice: %+v", lifted)
	}
	if lifted, _ := s.LiftFreezes(ctx, "", nil, now, "bob", "github:2"); len(lifted) != 1 || lifted[0].App != "" {
		t.Fatalf("lift the org-wide freeze: %+v", lifted)
	}
	if fs, _ := s.Freezes(ctx, "", now); len(fs) != 2 || fs[0].Region != "prod3" || fs[1].App != "other" {
		t.Fatalf("left: %+v", fs)
	}
}
