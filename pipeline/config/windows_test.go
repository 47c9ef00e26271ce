package config

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// windowed is a config whose region prod3 has the windows (YAML list items) and keys given.
func windowed(t *testing.T, windows string) *Region {
	t.Helper()
	cfg, err := Parse("immunity.yml", []byte(windowedYAML(windows)))
	if err != nil {
		t.Fatal(err)
	}
	r, _, _ := cfg.Apps[0].Region("prod3")
	return r
}

func windowedYAML(windows string) string {
	return `
apps:
  - name: papi
    repo: {path: papi.git}
    build: {command: [make], artifacts: [bin]}
    run: {command: [bin/papi]}
    regions:
      - name: prod3
        production: true
        hosts: [{name: host1, port: 41003}]
        windows:
` + windows
}

func TestWindowMistakesNameFileLine(t *testing.T) {
	cases := []struct {
		name, windows string
		want          []string
	}{
		{"typo in a window key", `
          - {dayz: [mon-thu], hours: "09:00-16:00"}
`, []string{
			`immunity.yml:13: unknown key "dayz" in apps[0].regions[0].windows[0] (did you mean "days"?); expected one of: days, hours, zone`,
		}},
		{"bad day, hours and zone, each on its line", `
          - days: [mon-thurs]
            hours: "9-16"
            zone: Europe/Berln
`, []string{
			`immunity.yml:13: region prod3: windows[0].days: expected mon, tue, wed, thu, fri, sat, sun or a range such as mon-thu, got "mon-thurs"`,
			`immunity.yml:14: region prod3: windows[0].hours: expected HH:MM-HH:MM such as "09:00-16:00", got "9-16"`,
			`immunity.yml:15: region prod3: windows[0].zone: expected an IANA time zone such as Europe/Berlin or UTC, got "Europe/Berln"`,
		}},
		{"empty window, no days, Local zone", `
          - {days: [mon], hours: "09:00-16:00"}
          - {hours: "10:00-10:00", zone: Local}
`, []string{
			`immunity.yml:14: region prod3: windows[1].days: expected a list of days such as [mon-thu] or [mon, wed, fri]`,
			`immunity.yml:14: region prod3: windows[1].hours: the window "10:00-10:00" is empty: start and end are the same`,
			`immunity.yml:14: region prod3: windows[1].zone: expected an IANA time zone such as Europe/Berlin or UTC, got "Local"`,
		}},
		{"hours out of range", `
          - {days: [sat], hours: "24:00-06:00"}
          - {days: [sun], hours: "22:00-25:00"}
`, []string{
			`immunity.yml:13: region prod3: windows[0].hours: expected HH:MM-HH:MM such as "09:00-16:00", got "24:00-06:00"`,
			`immunity.yml:14: region prod3: windows[1].hours: expected HH:MM-HH:MM such as "09:00-16:00", got "22:00-25:00"`,
		}},
		{"windows not a list", `          {days: [mon]}
`, []string{
			`immunity.yml:12: apps[0].regions[0].windows: expected a list, got a mapping`,
		}},
		{"negative soak", `
          - {days: [mon], hours: "09:00-16:00"}
        soak: -5m
`, []string{
			`immunity.yml:14: expected a duration such as 30s or 5m, got "-5m"`,
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("immunity.yml", []byte(windowedYAML(c.windows)))
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("want a *ConfigError, got %v", err)
			}
			if len(ce.Problems) != len(c.want) {
				t.Errorf("want %d problems, got %d:\n%s", len(c.want), len(ce.Problems), err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not say %q; it says:\n%s", w, err)
				}
			}
		})
	}
}

func TestWindowsParseDaysHoursZoneAndSoak(t *testing.T) {
	r := windowed(t, `          - {days: [mon-thu, sat], hours: "09:00-16:30", zone: Europe/Berlin}
        soak: 30m
`)
	w := r.Windows[0]
	want := [7]bool{time.Monday: true, time.Tuesday: true, time.Wednesday: true, time.Thursday: true, time.Saturday: true}
	if w.days != want || w.start != 9*60 || w.end != 16*60+30 || w.loc.String() != "Europe/Berlin" {
		t.Fatalf("window compiled as days %v, %d-%d in %v", w.days, w.start, w.end, w.loc)
	}
	if r.Soak.Duration != 30*time.Minute {
		t.Fatalf("soak = %v, want 30m", r.Soak)
	}
	if closed, _, _ := (&Region{Name: "open"}).Closed(time.Now()); closed {
		t.Fatal("a region without windows is closed")
	}
}

func TestClosedSaysWhenTheNextWindowOpens(t *testing.T) {
	berlin := mustZone(t, "Europe/Berlin")
	newYork := mustZone(t, "America/New_York")
	utc := func(s string) time.Time {
		t.Helper()
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	cases := []struct {
		name, windows string
		now           time.Time
		opens         string // "" when open at now; else RFC 3339 in UTC
		shown         string // opens, as people read it in the window's zone
	}{
		{"inside", `          - {days: [mon-thu], hours: "09:00-16:00", zone: Europe/Berlin}
`, time.Date(2026, 12, 3, 15, 59, 0, 0, berlin), "", ""},
		{"end exclusive, next day", `          - {days: [mon-thu], hours: "09:00-16:00", zone: Europe/Berlin}
`, time.Date(2026, 12, 2, 16, 0, 0, 0, berlin), "2026-12-03T08:00:00Z", "Thu 09:00 CET"},
		{"over the weekend", `          - {days: [mon-thu], hours: "09:00-16:00", zone: Europe/Berlin}
`, time.Date(2026, 12, 3, 17, 0, 0, 0, berlin), "2026-12-07T08:00:00Z", "Mon 09:00 CET"},
		{"into summer time, end of March", `          - {days: [mon-thu], hours: "09:00-16:00", zone: Europe/Berlin}
`, time.Date(2026, 3, 27, 17, 0, 0, 0, berlin), "2026-03-30T07:00:00Z", "Mon 09:00 CEST"},
		{"into winter time, end of October", `          - {days: [mon-thu], hours: "09:00-16:00", zone: Europe/Berlin}
`, time.Date(2026, 10, 23, 17, 0, 0, 0, berlin), "2026-10-26T08:00:00Z", "Mon 09:00 CET"},
		{"start skipped by the clocks going forward opens when they do", `          - {days: [sun], hours: "02:30-04:00", zone: Europe/Berlin}
`, utc("2026-03-28T23:00:00Z"), "2026-03-29T01:00:00Z", "Sun 03:00 CEST"},
		{"start repeated by the clocks going back opens the first time", `          - {days: [sun], hours: "02:00-04:00", zone: Europe/Berlin}
`, utc("2026-10-24T23:00:00Z"), "2026-10-25T00:00:00Z", "Sun 02:00 CEST"},
		{"the repeated hour opens a window again", `          - {days: [sun], hours: "00:00-02:30", zone: Europe/Berlin}
`, utc("2026-10-25T00:40:00Z"), "2026-10-25T01:00:00Z", "Sun 02:00 CET"},
		{"across midnight, the morning part", `          - {days: [fri], hours: "22:00-06:00", zone: UTC}
`, utc("2026-12-05T05:59:00Z"), "", ""},
		{"across midnight, after it", `          - {days: [fri], hours: "22:00-06:00", zone: UTC}
`, utc("2026-12-05T06:00:00Z"), "2026-12-11T22:00:00Z", "Fri 22:00 UTC"},
		{"across midnight, Sunday into Monday", `          - {days: [sun], hours: "23:00-01:00"}
`, utc("2026-12-07T00:30:00Z"), "", ""},
		{"until midnight", `          - {days: [thu], hours: "20:00-24:00"}
`, utc("2026-12-03T23:59:00Z"), "", ""},
		{"several windows: the earliest, in its own zone", `          - {days: [mon-fri], hours: "09:00-12:00", zone: Europe/Berlin}
          - {days: [mon-fri], hours: "08:00-10:00", zone: America/New_York}
`, time.Date(2026, 12, 3, 12, 30, 0, 0, berlin), "2026-12-03T13:00:00Z", "Thu 08:00 EST"},
		{"several windows: a gap between them", `          - {days: [mon-fri], hours: "09:00-12:00", zone: Europe/Berlin}
          - {days: [mon-fri], hours: "08:00-10:00", zone: America/New_York}
`, time.Date(2026, 12, 3, 10, 0, 0, 0, newYork), "2026-12-04T08:00:00Z", "Fri 09:00 CET"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := windowed(t, c.windows)
			closed, opens, zone := r.Closed(c.now)
			if c.opens == "" {
				if closed {
					t.Fatalf("closed at %v, next opening %v; want open", c.now, opens)
				}
				return
			}
			if !closed {
				t.Fatalf("open at %v; want closed until %s", c.now, c.opens)
			}
			if !opens.Equal(utc(c.opens)) {
				t.Errorf("opens %v, want %s", opens.UTC(), c.opens)
			}
			if got := opens.In(zone).Format("Mon 15:04 MST"); got != c.shown {
				t.Errorf("shown as %q, want %q", got, c.shown)
			}
		})
	}
}

// TestClosedAgreesWithAMinuteByMinuteWalk checks the direct computation against the plainest
// one, on random windows and instants around the DST changes of zones that have them
// (Lord Howe moves its clocks by half an hour).
func TestClosedAgreesWithAMinuteByMinuteWalk(t *testing.T) {
	zones := []string{"Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "UTC"}
	days := []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"}
	rng := rand.New(rand.NewPCG(15, 2))
	for i := range 400 {
		var ws strings.Builder
		for range 1 + rng.IntN(2) {
			from, to := days[rng.IntN(7)], days[rng.IntN(7)]
			start := rng.IntN(48) * 30
			if rng.IntN(2) == 0 {
				start = rng.IntN(8) * 30 // around the hours clocks change in
			}
			end := (start + 30*(1+rng.IntN(47))) % (24 * 60)
			fmt.Fprintf(&ws, "          - {days: [%s-%s], hours: \"%02d:%02d-%02d:%02d\", zone: %s}\n",
				from, to, start/60, start%60, end/60, end%60, zones[rng.IntN(len(zones))])
		}
		r := windowed(t, ws.String())
		base := []time.Time{
			time.Date(2026, 3, 28, 0, 0, 0, 0, time.UTC), time.Date(2026, 10, 24, 0, 0, 0, 0, time.UTC),
			time.Date(2026, 3, 7, 0, 0, 0, 0, time.UTC), time.Date(2026, 4, 4, 0, 0, 0, 0, time.UTC),
		}[i%4]
		now := base.Add(time.Duration(rng.IntN(2*24*60*60)) * time.Second)
		closed, opens, _ := r.Closed(now)
		wantClosed, wantOpens := walk(r, now)
		if closed != wantClosed || !opens.Equal(wantOpens) {
			t.Errorf("windows\n%sat %v: Closed says %v, opens %v; the walk says %v, opens %v",
				ws.String(), now.UTC(), closed, opens.UTC(), wantClosed, wantOpens.UTC())
		}
	}
}

// walk finds the next opening minute by minute, as the simplest correct search does.
func walk(r *Region, now time.Time) (bool, time.Time) {
	in := func(t time.Time) bool {
		for i := range r.Windows {
			if r.Windows[i].contains(t) {
				return true
			}
		}
		return false
	}
	if in(now) {
		return false, time.Time{}
	}
	for t := now.Truncate(time.Minute).Add(time.Minute); t.Sub(now) <= horizon; t = t.Add(time.Minute) {
		if in(t) {
			return true, t
		}
	}
	return true, time.Time{}
}

func mustZone(t *testing.T, name string) *time.Location {
	t.Helper()
	l, err := time.LoadLocation(name)
	if err != nil {
		t.Fatalf("time zone %s: %v (the tests need the system's zoneinfo)", name, err)
	}
	return l
}
