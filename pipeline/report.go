package pipeline

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/immunity-app/immunity/store"
)

// DefaultReportPeriod is how far back a delivery report looks when no start is given.
const DefaultReportPeriod = 30 * 24 * time.Hour

// unknownCommitRetry is how long a commit the repository did not have is taken as
// unknown before it is looked up again (a mirror may fetch it meanwhile).
const unknownCommitRetry = 10 * time.Minute

type commitTime struct {
	at      time.Time // zero: unknown
	checked time.Time // when it was found unknown
}

// Report computes an app's delivery figures over [since, until): its production regions
// come from its config and each release's commit time from its repository (through the
// builder, remembered once found).
func (e *Engine) Report(ctx context.Context, app string, since, until time.Time) (store.Report, error) {
	a, err := e.app(app)
	if err != nil {
		return store.Report{}, err
	}
	q := store.ReportQuery{App: a.Name, Since: since, Until: until}
	for _, r := range a.Regions {
		if r.Production {
			q.Production = append(q.Production, r.Name)
		}
	}
	q.CommitTime = func(sha string) (time.Time, bool) {
		t := e.commitTime(ctx, a.Name, sha)
		return t, !t.IsZero()
	}
	if !since.Before(until) {
		return store.Report{}, fmt.Errorf("%w: the period ends (%s) before it starts (%s)", ErrBadInput, until.UTC().Format(time.RFC3339), since.UTC().Format(time.RFC3339))
	}
	return e.st.Report(ctx, q)
}

// commitTime is a commit's committer time, zero when the app's repository does not have it.
func (e *Engine) commitTime(ctx context.Context, app, sha string) time.Time {
	key := app + " " + sha
	now := time.Now()
	e.commitsMu.Lock()
	c, ok := e.commits[key]
	e.commitsMu.Unlock()
	if ok && (!c.at.IsZero() || now.Sub(c.checked) < unknownCommitRetry) {
		return c.at
	}
	a, err := e.app(app)
	if err != nil {
		return time.Time{}
	}
	got, err := e.builder.Commit(ctx, a, sha)
	c = commitTime{checked: now}
	if err == nil && got.SHA == sha {
		c.at = got.Committed.UTC()
	} else if err != nil {
		e.log.Debug("commit time unknown", "app", app, "sha", sha, "err", err)
	}
	e.commitsMu.Lock()
	if e.commits == nil {
		e.commits = map[string]commitTime{}
	}
	e.commits[key] = c
	e.commitsMu.Unlock()
	return c.at
}

// ParsePeriod reads a report's period as the CLI and the API take it. since is how far
// back from now ("30d", "2w", "36h", "90m") or a start (a date "2026-11-01", midnight UTC,
// or an RFC 3339 time); "" is 30 days back. until is an end in the same forms ("" is now;
// a duration counts back from now); the period is [since, until).
func ParsePeriod(since, until string, now time.Time) (time.Time, time.Time, error) {
	now = now.UTC()
	end := now
	if until != "" {
		t, err := parseWhen(until, now)
		if err != nil {
			return time.Time{}, time.Time{}, fmt.Errorf("until %q: %w", until, err)
		}
		end = t
	}
	start := now.Add(-DefaultReportPeriod)
	if since != "" {
		t, err := parseWhen(since, now)
		if err != nil {
			return time.Time{}, time.Time{}, fmt.Errorf("since %q: %w", since, err)
		}
		start = t
	}
	if !start.Before(end) {
		return time.Time{}, time.Time{}, fmt.Errorf("the period ends (%s) before it starts (%s)", end.Format(time.RFC3339), start.Format(time.RFC3339))
	}
	return start, end, nil
}

var errWhen = fmt.Errorf(`expected a duration back from now (30d, 2w, 36h, 90m), a date (2026-11-01) or an RFC 3339 time`)

func parseWhen(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC(), nil
	}
	if n := len(s); n >= 2 && (s[n-1] == 'd' || s[n-1] == 'w') {
		v, err := strconv.Atoi(s[:n-1])
		if err != nil || v <= 0 {
			return time.Time{}, errWhen
		}
		days := v
		if s[n-1] == 'w' {
			days *= 7
		}
		if days > 3660 {
			return time.Time{}, fmt.Errorf("%d days is more than ten years", days)
		}
		return now.AddDate(0, 0, -days), nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, errWhen
}

// HumanSeconds is a duration in seconds as a person reads it: 45s, 30m, 3h 10m, 2d 4h.
func HumanSeconds(s float64) string {
	d := time.Duration(s) * time.Second
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d/time.Minute))
	case d < 48*time.Hour:
		h, m := int(d/time.Hour), int(d%time.Hour/time.Minute)
		if m == 0 {
			return fmt.Sprintf("%dh", h)
		}
		return fmt.Sprintf("%dh %dm", h, m)
	}
	days, h := int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour)
	if h == 0 {
		return fmt.Sprintf("%dd", days)
	}
	return fmt.Sprintf("%dd %dh", days, h)
}
