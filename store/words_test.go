package store

import (
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
