package logctx

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

func lines(t *testing.T, b *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

func TestLinesLoggedWithAContextSayWhatTheyAreAbout(t *testing.T) {
	var b bytes.Buffer
	log := slog.New(Handler(slog.NewJSONHandler(&b, nil)))
	ctx := With(context.Background(), slog.String("app", "papi"), slog.Int64("run", 7), slog.String("sha", "1a2b"))
	ctx = With(ctx, slog.String("region", "prod"), slog.String("sha", "3c4d")) // a key again replaces it

	log.InfoContext(ctx, "plain")
	log.With("host", "host1", "app", "other").InfoContext(ctx, "with", "sha", "5e6f")
	log.InfoContext(ctx, "about another run", "run", 8)
	log.InfoContext(ctx, "the same run", "run", 7)
	log.Info("no context")
	log.WithGroup("g").InfoContext(ctx, "grouped", "x", 1)

	got := lines(t, &b)
	want := []map[string]any{
		{"msg": "plain", "app": "papi", "run": 7.0, "region": "prod", "sha": "3c4d"},
		{"msg": "with", "app": "other", "host": "host1", "run": 7.0, "region": "prod", "sha": "5e6f"},
		{"msg": "about another run", "run": 8.0},
		{"msg": "the same run", "app": "papi", "run": 7.0, "region": "prod", "sha": "3c4d"},
		{"msg": "no context"},
		{"msg": "grouped", "g": map[string]any{"x": 1.0}},
	}
	if len(got) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(got), len(want), b.String())
	}
	for i, w := range want {
		delete(got[i], "time")
		delete(got[i], "level")
		if len(got[i]) != len(w) {
			t.Errorf("line %d = %v, want %v", i, got[i], w)
			continue
		}
		for k, v := range w {
			if m, ok := v.(map[string]any); ok {
				if g, _ := got[i][k].(map[string]any); g == nil || g["x"] != m["x"] {
					t.Errorf("line %d: %s = %v, want %v", i, k, got[i][k], v)
				}
				continue
			}
			if got[i][k] != v {
				t.Errorf("line %d: %s = %v, want %v (%v)", i, k, got[i][k], v, got[i])
			}
		}
	}
	if strings.Count(b.String(), `"app"`) != 3 {
		t.Errorf("a key written twice on a line:\n%s", b.String())
	}
}

func TestHandlerWrapsOnce(t *testing.T) {
	h := Handler(slog.NewTextHandler(&bytes.Buffer{}, nil))
	if Handler(h) != h {
		t.Error("wrapping a wrapped handler wrapped it again")
	}
}
