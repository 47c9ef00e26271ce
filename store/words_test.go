package store

import (
	"context"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"strings"
	"testing"
)

// TestEveryStateHasWords reads states.go and checks that each declared state of each kind
// has its own words for people, none of them the stored word with an underscore.
func TestEveryStateHasWords(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "states.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	has := map[string]func(string) (string, bool){
		"RunState":     func(s string) (string, bool) { w, ok := runWords[RunState(s)]; return w, ok },
		"StageState":   func(s string) (string, bool) { w, ok := stageWords[StageState(s)]; return w, ok },
		"StepState":    func(s string) (string, bool) { w, ok := stepWords[StepState(s)]; return w, ok },
		"ReleaseState": func(s string) (string, bool) { w, ok := releaseWords[ReleaseState(s)]; return w, ok },
	}
	seen := 0
	ast.Inspect(f, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok || vs.Type == nil || len(vs.Values) != 1 {
			return true
		}
		typ, _ := vs.Type.(*ast.Ident)
		lit, _ := vs.Values[0].(*ast.BasicLit)
		if typ == nil || lit == nil || has[typ.Name] == nil {
			return true
		}
		seen++
		stored := strings.Trim(lit.Value, `"`)
		w, ok := has[typ.Name](stored)
		if !ok || w == "" || strings.Contains(w, "_") {
			t.Errorf("%s %s (%q) has no words for people (got %q)", typ.Name, vs.Names[0].Name, stored, w)
		}
		return true
	})
	if seen < 30 {
		t.Fatalf("found only %d states in states.go; the test no longer reads it right", seen)
	}
}

func TestWordsOfAnUnknownState(t *testing.T) {
	if got := StageState("paused_by_bot").Words(); got != "paused by bot" {
		t.Errorf("unknown stage state reads %q, want %q", got, "paused by bot")
	}
	if got := StageAwaitingApproval.Words(); got != "waiting for promotion" {
		t.Errorf("awaiting_approval reads %q", got)
	}
}

func TestEveryVerdictOfAStageIsKept(t *testing.T) {
	engines(t, func(t *testing.T, db string) {
		s := open(t, db)
		ctx := context.Background()
		r, err := s.CreateRun(ctx, Run{App: "papi", SHA: "abc1234", State: RunRunning}, []string{"sandbox2"}, map[string][]string{"sandbox2": {"host1"}})
		if err != nil {
			t.Fatal(err)
		}
		id := r.Stages[0].ID
		for _, u := range []StageUpdate{{State: StageMonitoring, Verdict: `{"look":1}`}, {Message: "still looking"}, {Verdict: `{"look":2}`},
			{Verdict: `{"look":3}`, OnlyIf: []StageState{StageFailed}}, {State: StageSucceeded, Verdict: `{"look":3,"final":true}`}} {
			if err := s.UpdateStage(ctx, id, u); err != nil && !errors.Is(err, ErrStateChanged) {
				t.Fatal(err)
			}
		}
		vs, err := s.StageVerdicts(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, v := range vs {
			got = append(got, v.Verdict)
			if v.At.IsZero() {
				t.Errorf("verdict %s has no time", v.Verdict)
			}
		}
		if want := []string{`{"look":1}`, `{"look":2}`, `{"look":3,"final":true}`}; strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("kept verdicts %v, want %v (a refused update keeps none)", got, want)
		}
		if st, _ := s.Run(ctx, r.ID); st.Stages[0].Verdict != `{"look":3,"final":true}` {
			t.Errorf("the stage's verdict is %s", st.Stages[0].Verdict)
		}
	})
}
