package config

import (
	"fmt"
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

// contains says whether t falls inside the window.
func (w *Window) contains(t time.Time) bool {
	if !w.ok && len(w.compile()) > 0 {
		return false // a window that does not parse never opens: fail closed
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
// the next one opens (the zero time if none opens within two weeks, or none parses). A
// region without windows is never closed.
func (r *Region) Closed(now time.Time) (closed bool, opens time.Time, zone *time.Location) {
	if len(r.Windows) == 0 {
		return false, time.Time{}, nil
	}
	for i := range r.Windows {
		if r.Windows[i].contains(now) {
			return false, time.Time{}, nil
		}
	}
	// Walk forward minute by minute on the minute grid: windows open on whole minutes of
	// their zone's wall clock, and a DST jump skips or repeats wall-clock minutes, which a
	// walk in absolute time handles without special cases.
	t := now.Truncate(time.Minute).Add(time.Minute)
	for end := now.Add(15 * 24 * time.Hour); t.Before(end); t = t.Add(time.Minute) {
		for i := range r.Windows {
			if r.Windows[i].contains(t) {
				return true, t, r.Windows[i].loc
			}
		}
	}
	return true, time.Time{}, nil
}
