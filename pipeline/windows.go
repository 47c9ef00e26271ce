package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/immunity-app/immunity/pipeline/config"
	"github.com/immunity-app/immunity/store"
)

// ErrFrozen: a freeze holds the region (break-glass: --force by someone granted force).
var ErrFrozen = errors.New("region is frozen")

// The rules a Gate can name.
const (
	RuleLocked = "locked" // a person locked the region; only unlock lifts it
	RuleFrozen = "frozen" // a freeze until a time
	RuleWindow = "window" // outside the region's deploy windows
	RuleSoak   = "soak"   // the release has not been live long enough in the region before
)

// Gate is the answer to "may a release go into this region now?": Allowed, or the first
// rule in the way (lock, freeze, window, soak), why in words people read ("waiting for
// the deploy window, opens Mon 09:00 CET"), and when the time-bound rules all let it in by
// themselves (zero when a person must act: a lock, or no window ever opens). Rollbacks
// never ask.
type Gate struct {
	Allowed bool      `json:"allowed"`
	Rule    string    `json:"rule,omitempty"`
	Why     string    `json:"why,omitempty"`
	Opens   time.Time `json:"opens,omitzero"`
}

// DeployAllowed says whether a region of an app takes a deploy or a promotion at now:
// not locked, not frozen, inside one of its deploy windows, and the release next in line
// for it (the newest one waiting for the region, else the one live in the region before)
// has soaked there for the region before's soak. A store error is an error, never
// "allowed".
func (e *Engine) DeployAllowed(ctx context.Context, app, region string, now time.Time) (Gate, error) {
	a, err := e.app(app)
	if err != nil {
		return Gate{}, err
	}
	reg, i, err := e.region(a, region)
	if err != nil {
		return Gate{}, err
	}
	sha, err := e.nextInLine(ctx, a, i)
	if err != nil {
		return Gate{}, fmt.Errorf("may %s deploy to %s: %w", app, region, err)
	}
	return e.allowed(ctx, a, reg, i, sha, now)
}

// ReleaseAllowed is DeployAllowed for a given release (a SHA or a prefix of one).
func (e *Engine) ReleaseAllowed(ctx context.Context, app, sha, region string, now time.Time) (Gate, error) {
	a, err := e.app(app)
	if err != nil {
		return Gate{}, err
	}
	reg, i, err := e.region(a, region)
	if err != nil {
		return Gate{}, err
	}
	return e.allowed(ctx, a, reg, i, sha, now)
}

// nextInLine is the release that would go into the region at index i next: the newest
// waiting for it, else the one live in the region before ("" for the first region).
func (e *Engine) nextInLine(ctx context.Context, a *config.App, i int) (string, error) {
	runs, err := e.st.Runs(ctx, a.Name, true, 0)
	if err != nil {
		return "", err
	}
	for _, r := range runs { // newest first
		if n := nextStage(&r); n != nil && n.Region == a.Regions[i].Name && n.State.Waiting() && r.Trigger != TriggerDeploy {
			return r.SHA, nil
		}
	}
	if i == 0 {
		return "", nil
	}
	live, err := e.st.Live(ctx, a.Name, a.Regions[i-1].Name)
	if err != nil {
		return "", err
	}
	return majority(live), nil
}

func (e *Engine) allowed(ctx context.Context, a *config.App, reg *config.Region, i int, sha string, now time.Time) (Gate, error) {
	if l, locked, err := e.locked(ctx, a.Name, reg.Name); err != nil {
		return Gate{}, err
	} else if locked {
		return Gate{Rule: RuleLocked, Why: fmt.Sprintf("%s is locked by %s: %s", reg.Name, holderName(l), l.Reason)}, nil
	}
	rules, err := e.timeRules(ctx, a, reg, i, sha, now)
	if err != nil {
		return Gate{}, err
	}
	return rules.at(now), nil
}

// timeRules are the rules that end by themselves, read once: the freezes holding the
// region, its windows, and since when the release has been live in the region before.
type timeRules struct {
	region  *config.Region
	freezes []store.Freeze
	soak    time.Duration
	before  string    // the region before, whose soak counts
	liveAt  time.Time // since when the release is live there (zero: not yet)
	zone    *time.Location
}

func (e *Engine) timeRules(ctx context.Context, a *config.App, reg *config.Region, i int, sha string, now time.Time) (timeRules, error) {
	tr := timeRules{region: reg, zone: time.UTC}
	for _, w := range reg.Windows {
		if l, err := time.LoadLocation(w.Zone); err == nil && w.Zone != "" {
			tr.zone = l
			break
		}
	}
	all, err := e.st.Freezes(ctx, a.Name, now)
	if err != nil {
		return tr, fmt.Errorf("read the freezes of %s: %w", a.Name, err)
	}
	for _, f := range all {
		if f.Covers(a.Name, reg.Name) {
			tr.freezes = append(tr.freezes, f)
		}
	}
	if i > 0 && a.Regions[i-1].Soak.Duration > 0 && sha != "" {
		tr.before, tr.soak = a.Regions[i-1].Name, a.Regions[i-1].Soak.Duration
		if tr.liveAt, err = e.liveSince(ctx, a.Name, tr.before, sha); err != nil {
			return tr, err
		}
	}
	return tr, nil
}

// liveSince is when a release first went live in a region (its region history; zero when
// it never did). A newer release going live there later does not move it.
func (e *Engine) liveSince(ctx context.Context, app, region, sha string) (time.Time, error) {
	hist, err := e.st.History(ctx, app, region, 1000)
	if err != nil {
		return time.Time{}, fmt.Errorf("read the history of %s %s: %w", app, region, err)
	}
	var first time.Time
	for _, h := range hist { // newest first
		if strings.HasPrefix(h.SHA, sha) && h.Action != "rollback" {
			first = h.At
		}
	}
	return first, nil
}

// at judges the rules at t; Opens is found by moving t to each rule's end in turn until
// none is in the way.
func (tr timeRules) at(t time.Time) Gate {
	g := tr.first(t)
	if g.Allowed {
		return g
	}
	next := g.Opens
	for range 16 {
		if next.IsZero() {
			break
		}
		h := tr.first(next)
		if h.Allowed {
			g.Opens = next
			return g
		}
		next = h.Opens
	}
	g.Opens = time.Time{}
	return g
}

// first is the first time-bound rule in the way at t, with when it alone ends.
func (tr timeRules) first(t time.Time) Gate {
	var hold *store.Freeze
	for k, f := range tr.freezes {
		if f.Until.After(t) && (hold == nil || f.Until.After(hold.Until)) {
			hold = &tr.freezes[k]
		}
	}
	if hold != nil {
		scope := "org-wide"
		if hold.App != "" {
			scope = hold.App
			if hold.Region != "" {
				scope += " " + hold.Region
			}
		}
		return Gate{Rule: RuleFrozen, Opens: hold.Until,
			Why: fmt.Sprintf("frozen (%s) until %s by %s: %s", scope, When(hold.Until, tr.zone, t), hold.Actor, hold.Reason)}
	}
	if closed, opens, zone := tr.region.Closed(t); closed {
		if opens.IsZero() {
			return Gate{Rule: RuleWindow, Why: "outside the deploy windows; none opens within two weeks"}
		}
		return Gate{Rule: RuleWindow, Opens: opens, Why: "waiting for the deploy window, opens " + When(opens, zone, t)}
	}
	if tr.soak > 0 {
		if tr.liveAt.IsZero() {
			return Gate{Rule: RuleSoak, Why: fmt.Sprintf("waiting for soak: the release is not live in %s yet (soak %s)", tr.before, tr.soak)}
		}
		if done := tr.liveAt.Add(tr.soak); done.After(t) {
			return Gate{Rule: RuleSoak, Opens: done, Why: fmt.Sprintf("waiting for soak: live in %s since %s, %s needed, done %s",
				tr.before, When(tr.liveAt, tr.zone, tr.liveAt), tr.soak, When(done, tr.zone, done))}
		}
	}
	return Gate{Allowed: true}
}

// gateHolds begin every reason first gives for holding a stage (Gate.Why).
var gateHolds = []string{"frozen (", "waiting for the deploy window", "outside the deploy windows", "waiting for soak"}

// GateHold says whether a stage's message is a wait on a time-bound rule (a freeze, the
// deploy windows, soak), which reporters show as it is.
func GateHold(msg string) bool {
	for _, p := range gateHolds {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

// When writes a time for people, in a zone: "Mon 09:00 CET" within a week of now, with
// the date beyond.
func When(t time.Time, zone *time.Location, now time.Time) string {
	if zone == nil {
		zone = time.UTC
	}
	t = t.In(zone)
	if d := t.Sub(now); d < 0 || d >= 6*24*time.Hour {
		return t.Format("Mon 2 Jan 2006 15:04 MST")
	}
	return t.Format("Mon 15:04 MST")
}

// releaseGate is the time-bound rules for one release going into a region at now.
func (e *Engine) releaseGate(ctx context.Context, a *config.App, reg *config.Region, i int, sha string, now time.Time) (Gate, error) {
	rules, err := e.timeRules(ctx, a, reg, i, sha, now)
	if err != nil {
		return Gate{}, err
	}
	return rules.at(now), nil
}

// MaxFreeze is how far ahead a freeze may end: a longer one is a typo or a lock.
const MaxFreeze = 90 * 24 * time.Hour

// Freeze stops deploys and promotions into regions of an app (none named: every region;
// app "": every app, an org-wide freeze) until a time, for a reason, held by the verified
// identity who froze. Rollbacks are never held. Bad input changes nothing.
func (e *Engine) Freeze(ctx context.Context, who Actor, app string, regions []string, until time.Time, reason string) (string, error) {
	c := e.command(who, "freeze", app, strings.Join(regions, ","), "", "until "+until.UTC().Format(time.RFC3339))
	fs, scope, err := e.freezes(who, app, regions, until, reason)
	if err == nil {
		err = e.st.AddFreezes(c.in(ctx), fs)
		if err == nil {
			e.reached("freeze")
		}
	}
	e.end(ctx, c, err)
	if err != nil {
		return "", err
	}
	msg := fmt.Sprintf("%s froze %s until %s: %s", who.Name, scope, When(until, time.UTC, e.now()), reason)
	e.announce(ctx, Frozen, who, app, regions, msg)
	return fmt.Sprintf("froze %s until %s: %s", scope, When(until, time.UTC, e.now()), reason), nil
}

func (e *Engine) freezes(who Actor, app string, regions []string, until time.Time, reason string) ([]store.Freeze, string, error) {
	scope := "every app"
	fail := func(format string, args ...any) ([]store.Freeze, string, error) {
		return nil, "", fmt.Errorf("freeze %s: %w: %s", scope, ErrBadInput, fmt.Sprintf(format, args...))
	}
	if app != "" {
		a, err := e.app(app)
		if err != nil {
			return nil, "", fmt.Errorf("freeze: %w", err)
		}
		scope = app
		for _, r := range regions {
			if _, _, err := e.region(a, r); err != nil {
				return nil, "", fmt.Errorf("freeze: %w", err)
			}
		}
		if len(regions) > 0 {
			scope += " " + strings.Join(regions, ", ")
		}
	} else if len(regions) > 0 {
		return fail("an org-wide freeze names no regions")
	}
	now := e.now()
	switch {
	case !until.After(now):
		return fail("until %s is not in the future (now %s)", until.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	case until.Sub(now) > MaxFreeze:
		return fail("until %s is more than %d days away; for an open-ended freeze, lock the region", until.UTC().Format(time.RFC3339), int(MaxFreeze.Hours()/24))
	case strings.TrimSpace(reason) == "":
		return fail("say why (freeze APP until TIME REASON)")
	}
	if err := CheckText("freeze reason", reason, MaxReason); err != nil {
		return nil, "", fmt.Errorf("freeze %s: %w", scope, err)
	}
	f := store.Freeze{App: app, Until: until, Reason: reason, Actor: who.Name, ActorID: who.Key(), Via: who.Via}
	if len(regions) == 0 {
		return []store.Freeze{f}, scope, nil
	}
	var out []store.Freeze
	for _, r := range regions {
		f.Region = r
		out = append(out, f)
	}
	return out, scope, nil
}

// Unfreeze lifts the freezes holding regions of an app (none named: all of the app's;
// app "": the org-wide ones) before they end; who lifted them is kept.
func (e *Engine) Unfreeze(ctx context.Context, who Actor, app string, regions []string) (string, error) {
	c := e.command(who, "unfreeze", app, strings.Join(regions, ","), "", "")
	scope := "every app"
	var lifted []store.Freeze
	var err error
	if app != "" {
		scope = strings.TrimSpace(app + " " + strings.Join(regions, ", "))
		var a *config.App
		if a, err = e.app(app); err == nil {
			for _, r := range regions {
				if _, _, err = e.region(a, r); err != nil {
					break
				}
			}
		}
	}
	if err == nil {
		lifted, err = e.st.LiftFreezes(c.in(ctx), app, regions, e.now(), who.Name, who.Key())
		if err == nil && len(lifted) > 0 {
			e.reached("unfreeze")
		}
	}
	if err == nil && len(lifted) == 0 {
		err = fmt.Errorf("unfreeze %s: %w: no freeze of it holds now", scope, ErrBadInput)
	}
	e.end(ctx, c, err)
	if err != nil {
		return "", err
	}
	e.announce(ctx, Unfrozen, who, app, regions, fmt.Sprintf("%s unfroze %s", who.Name, scope))
	e.Kick()
	return "unfroze " + scope, nil
}

// announce tells listeners of a freeze or its end: once per app concerned.
func (e *Engine) announce(ctx context.Context, kind EventKind, who Actor, app string, regions []string, msg string) {
	apps := []string{app}
	if app == "" {
		apps = e.appNames()
	}
	for _, name := range apps {
		e.emit(ctx, Event{Kind: kind, App: name, Region: strings.Join(regions, ","), Actor: who, Message: msg})
	}
}
