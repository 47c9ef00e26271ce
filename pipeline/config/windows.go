package config

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Window is a span of the week when a region takes automatic progress and promotions:
// days (mon..sun, ranges such as mon-thu), hours "HH:MM-HH:MM" (the end exclusive; an end
// before the start runs past midnight into the next day) in an IANA zone (default UTC).
// Windows are judged in their zone's wall-clock time, so a DST change moves them with the
// local clock.
type Window struct {
	Days  []string `yaml:"days"`
	Hours string   `yaml:"hours"`
	Zone  string   `yaml:"zone"`

	days       [7]bool // by time.Weekday
	start, end int     // minutes after midnight
	loc        *time.Location
	ok         bool
}

var weekdays = map[string]time.Weekday{"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday,
	"wed": time.Wednesday, "thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday}

// compile parses the window's text; its problems are returned, one per mistake.
func (w *Window) compile() []string {
	var probs []string
	w.days = [7]bool{}
	if len(w.Days) == 0 {
		probs = append(probs, "days: expected a list of days such as [mon-thu] or [mon, wed, fri]")
	}
	for _, d := range w.Days {
		from, to, isRange := strings.Cut(strings.ToLower(strings.TrimSpace(d)), "-")
		a, okA := weekdays[from]
		b, okB := weekdays[to]
		if !isRange {
			b, okB = a, okA
		}
		if !okA || !okB {
			probs = append(probs, fmt.Sprintf("days: expected mon, tue, wed, thu, fri, sat, sun or a range such as mon-thu, got %q", d))
			continue
		}
		for i := a; ; i = (i + 1) % 7 {
			w.days[i] = true
			if i == b {
				break
			}
		}
	}
	s, e, err := parseHours(w.Hours)
	if err != nil {
		probs = append(probs, fmt.Sprintf("hours: %v", err))
	}
	w.start, w.end = s, e
	zone := w.Zone
	if zone == "" {
		zone = "UTC"
	}
	loc, err := time.LoadLocation(zone)
	if err != nil || strings.EqualFold(zone, "local") {
		probs = append(probs, fmt.Sprintf("zone: expected an IANA time zone such as Europe/Berlin or UTC, got %q", w.Zone))
	}
	w.loc = loc
	w.ok = len(probs) == 0
	return probs
}

func parseHours(h string) (int, int, error) {
	bad := fmt.Errorf("expected HH:MM-HH:MM such as \"09:00-16:00\", got %q", h)
	from, to, ok := strings.Cut(strings.TrimSpace(h), "-")
	if !ok {
		return 0, 0, bad
	}
	clock := func(s string) (int, bool) {
		t, err := time.Parse("15:04", strings.TrimSpace(s))
		if err != nil {
			if strings.TrimSpace(s) == "24:00" {
				return 24 * 60, true
			}
			return 0, false
		}
		return t.Hour()*60 + t.Minute(), true
	}
	s, okS := clock(from)
	e, okE := clock(to)
	if !okS || !okE || s == 24*60 {
		return 0, 0, bad
	}
	if s == e {
		return 0, 0, fmt.Errorf("the window %q is empty: start and end are the same", h)
	}
	return s, e, nil
}

// compiled is the window ready to use: Parse compiles every window once; one written in
// Go is compiled here on a copy (nothing shared is written). A window that does not parse
// is nil: it never opens (fail closed).
func (w *Window) compiled() *Window {
	if w.ok {
		return w
	}
	c := *w
	if len(c.compile()) > 0 {
		return nil
	}
	return &c
}

// contains says whether t falls inside the window.
func (w *Window) contains(t time.Time) bool {
	if w = w.compiled(); w == nil {
		return false
	}
	l := t.In(w.loc)
	m := l.Hour()*60 + l.Minute()
	day := l.Weekday()
	if w.start < w.end {
		return w.days[day] && m >= w.start && m < w.end
	}
	// Past midnight: the evening part belongs to today, the morning part to yesterday.
	return (w.days[day] && m >= w.start) || (w.days[(day+6)%7] && m < w.end)
}

// Closed says whether a region with windows is outside all of them at now, and if so when
// the next one opens and in which zone (the zero time if none opens within two weeks, or
// none parses). A region without windows is never closed.
func (r *Region) Closed(now time.Time) (closed bool, opens time.Time, zone *time.Location) {
	if len(r.Windows) == 0 {
		return false, time.Time{}, nil
	}
	for i := range r.Windows {
		if r.Windows[i].contains(now) {
			return false, time.Time{}, nil
		}
	}
	for i := range r.Windows {
		if t := r.Windows[i].next(now); !t.IsZero() && (opens.IsZero() || t.Before(opens)) {
			opens, zone = t, t.Location()
		}
	}
	return true, opens, zone
}

// horizon is how far ahead next looks: every window opens within a week, two cover a
// start time that a DST change skips on one of its days.
const horizon = 15 * 24 * time.Hour

// next is the first instant after now inside the window (the zero time if none within the
// horizon). Being inside only begins where the wall clock reaches the start on one of the
// window's days, or where the zone's offset changes (a DST jump can land the wall clock
// inside the window, or skip its start), so those are the only candidates.
func (w *Window) next(now time.Time) time.Time {
	if w = w.compiled(); w == nil {
		return time.Time{}
	}
	var cands []time.Time
	l := now.In(w.loc)
	for d := 0; d <= int(horizon/(24*time.Hour)); d++ {
		day := time.Date(l.Year(), l.Month(), l.Day()+d, 12, 0, 0, 0, w.loc)
		if w.days[day.Weekday()] {
			cands = append(cands, wallTimes(day.Year(), day.Month(), day.Day(), w.start, w.loc)...)
		}
	}
	for t := l; ; {
		_, end := t.ZoneBounds()
		if end.IsZero() || end.Sub(now) > horizon {
			break
		}
		cands = append(cands, end)
		t = end
	}
	var best time.Time
	for _, c := range cands {
		if c.After(now) && c.Sub(now) <= horizon && (best.IsZero() || c.Before(best)) && w.contains(c) {
			best = c
		}
	}
	return best.In(w.loc)
}

// wallTimes are the instants whose wall clock in loc reads the date at minute m: none in a
// gap a DST change skips, two in the hour it repeats (earliest first), else one.
func wallTimes(y int, mo time.Month, d, m int, loc *time.Location) []time.Time {
	wall := time.Date(y, mo, d, 0, m, 0, 0, time.UTC)
	var ts []time.Time
	for _, probe := range []time.Time{wall.Add(-24 * time.Hour), wall.Add(24 * time.Hour)} {
		_, off := probe.In(loc).Zone()
		t := wall.Add(-time.Duration(off) * time.Second).In(loc)
		got := time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), 0, 0, time.UTC)
		if got.Equal(wall) && !slices.ContainsFunc(ts, t.Equal) {
			ts = append(ts, t)
		}
	}
	slices.SortFunc(ts, time.Time.Compare)
	return ts
}
