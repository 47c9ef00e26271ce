package app

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/immunity-app/immunity/pipeline"
	"github.com/immunity-app/immunity/store"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

// times are the parts of a page that change with the clock.
var times = regexp.MustCompile(`<time datetime="[^"]*"( title="[^"]*")?>[^<]*</time>`)

// golden compares a page with testdata/NAME (times left out); -update rewrites it.
func golden(t *testing.T, name, got string) {
	t.Helper()
	got = times.ReplaceAllString(got, "<time>TIME</time>")
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test ./app -run Golden -update writes it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s differs (-want +got):\n%s", name, diff)
	}
}

// The region and audit pages as people read them.
func TestRegionAndAuditPagesGolden(t *testing.T) {
	in := openTest(t)
	fillDashboard(t, in)
	ctx := context.Background()
	in.Store.AddHistory(ctx, store.HistoryEntry{App: "papi", Region: "prod3", SHA: "3333333cccc", Action: "promote",
		Actor: "Ada Lovelace", ActorID: "github:1", Via: "dashboard", RunID: 2})
	in.Store.AddHistory(ctx, store.HistoryEntry{App: "papi", Region: "prod3", SHA: "1111111aaaa", Action: "rollback",
		Actor: "bob", ActorID: "slack:T1/U2", Via: "slack"})
	in.Store.AddEvent(ctx, store.Event{App: "papi", Region: "prod3", Host: "host1", Kind: string(pipeline.Reconciled),
		Message: "prod3/host1 found on 1111111, store said 3333333"})
	for name, path := range map[string]string{"region-prod3.html": "/regions/papi/prod3", "region-sandbox2.html": "/regions/papi/sandbox2",
		"audit.html": "/audit?app=papi"} {
		code, page := get(t, in, path)
		if code != 200 {
			t.Fatalf("%s: %d", path, code)
		}
		golden(t, name, page)
	}
}
