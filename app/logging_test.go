package app

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/immunity-app/immunity/pipeline"
	"github.com/immunity-app/immunity/store"
)

func TestNewLoggerFormatsAndLevels(t *testing.T) {
	var b bytes.Buffer
	log, err := NewLogger(&b, "json", "warn")
	if err != nil {
		t.Fatal(err)
	}
	log.Info("hidden")
	log.Warn("shown", "app", "papi")
	var rec map[string]any
	if err := json.Unmarshal(b.Bytes(), &rec); err != nil || rec["msg"] != "shown" || rec["app"] != "papi" {
		t.Fatalf("json at warn wrote %q (%v)", b.String(), err)
	}
	for _, bad := range [][2]string{{"xml", ""}, {"json", "loud"}} {
		if _, err := NewLogger(&b, bad[0], bad[1]); err == nil || !strings.Contains(err.Error(), "expected") {
			t.Errorf("NewLogger(%q, %q) = %v, want a clear refusal", bad[0], bad[1], err)
		}
	}
}

func TestEventLogCarriesTheRunsFields(t *testing.T) {
	var b bytes.Buffer
	log, _ := NewLogger(&b, "json", "")
	ev := pipeline.Event{Kind: pipeline.HostChanged, Time: time.Now(), App: "papi", Region: "prod3", Host: "host2",
		Message: "prod3/host2 switched", Run: store.Run{ID: 7, App: "papi", SHA: "1a2b3c"}}
	NewEventLog(log).Notify(context.Background(), ev)
	NewEventLog(log).Notify(context.Background(), pipeline.Event{Kind: pipeline.HostChanged}) // no message: no line
	var rec map[string]any
	if err := json.Unmarshal(b.Bytes(), &rec); err != nil {
		t.Fatalf("%q: %v", b.String(), err)
	}
	want := map[string]any{"msg": "prod3/host2 switched", "event": "host.changed", "app": "papi", "run": 7.0, "region": "prod3", "host": "host2", "sha": "1a2b3c"}
	for k, v := range want {
		if rec[k] != v {
			t.Errorf("%s = %v, want %v (line %s)", k, rec[k], v, b.String())
		}
	}
}
