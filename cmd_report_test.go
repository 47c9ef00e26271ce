package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/immunity-app/immunity/store"
)

func TestReportRefusesABadPeriod(t *testing.T) {
	for _, args := range [][]string{
		{"report", "papi", "--since", "yesterday"},
		{"report", "papi", "--since", "2026-11-08", "--until", "2026-11-01"},
		{"report"},
	} {
		var out, errb bytes.Buffer
		if code := run(context.Background(), args, &out, &errb); code != 2 || !strings.Contains(errb.String(), "usage: immunity report") {
			t.Errorf("%v: exit %d, stderr %q", args, code, errb.String())
		}
	}
}

func TestReportTextIsATable(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	since := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	back := time.Date(2026, 11, 4, 10, 20, 0, 0, time.UTC)
	r := store.Report{App: "papi", Since: since, Until: since.AddDate(0, 0, 7), Production: []string{"prod3"},
		Deploys: 2, DeploysPerDay: 0.29, DeploysPerWeek: 2,
		LeadTime:         store.Durations{Count: 2, Median: f(6600), P90: f(10800)},
		ProductionStages: 3, Failures: 1, ChangeFailureRate: f(0.33),
		TimeToRestore: store.Durations{Count: 1, Median: f(4800), P90: f(4800)}, CanaryStops: 1,
		Weeks: []store.ReportWeek{{Start: since}, {Start: since.AddDate(0, 0, 1), Deploys: 2, Failures: 1, CanaryStops: 1}},
		FailureList: []store.ReportFailure{{RunID: 3, SHA: "cccccccc11", Region: "prod3", How: "failed",
			Started: time.Date(2026, 11, 4, 9, 0, 0, 0, time.UTC), Restored: &back}},
	}
	var out bytes.Buffer
	if err := writeReport(&out, r); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"papi: delivery from 2026-11-01 00:00 to 2026-11-08 00:00 UTC (7 days; production: prod3)",
		"deploys to production  2                          (2 a week, 0.29 a day)",
		"lead time              median 1h 50m, p90 3h      (2 deploys)",
		"change failure rate    33%                        (1 of 3 production stages failed or were rolled back)",
		"time to restore        median 1h 20m, p90 1h 20m  (1 restored)",
		"canary stops           1",
		"2026-11-02        2         1             1",
		"2026-11-04 09:00  run 3  ccccccc in prod3, failed; restored after 1h 20m",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %q in\n%s", want, out.String())
		}
	}
}
