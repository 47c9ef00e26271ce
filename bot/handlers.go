package bot

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/immunity-app/immunity/store"
)

func (c *Commands) promote(ctx context.Context, req Request, p *Parsed) (string, error) {
	if p.Force {
		return c.eng.ForcePromote(ctx, req.Actor, p.App, p.Region, p.SHA)
	}
	return c.eng.Promote(ctx, req.Actor, p.App, p.Region, p.SHA)
}

func (c *Commands) freeze(ctx context.Context, req Request, p *Parsed) (string, error) {
	app := p.App
	if p.All {
		app = ""
	}
	until, err := ParseUntil(p.Until, c.eng.Now())
	if err != nil {
		err = fmt.Errorf("freeze: %w; nothing was changed", err)
		c.eng.Audit(ctx, req.Actor, "freeze", app, strings.Join(p.Regions, ","), "", clipArgs(req.Text), "refused", err.Error())
		return "", err
	}
	return c.eng.Freeze(ctx, req.Actor, app, p.Regions, until, p.Reason)
}

func (c *Commands) unfreeze(ctx context.Context, req Request, p *Parsed) (string, error) {
	app := p.App
	if p.All {
		app = ""
	}
	return c.eng.Unfreeze(ctx, req.Actor, app, p.Regions)
}

// ParseUntil reads when a freeze ends: a duration from now (90m, 2h, 3d) or a time
// (2026-12-24T18:00Z, 2026-12-24T18:00+01:00, 2026-12-24T18:00 and 2026-12-24 in UTC).
func ParseUntil(s string, now time.Time) (time.Time, error) {
	bad := fmt.Errorf("TIME: expected a duration such as 2h or 3d, or a time such as 2026-12-24T18:00Z, got %q", clip(s))
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days <= 0 {
			return time.Time{}, bad
		}
		return now.Add(time.Duration(days) * 24 * time.Hour), nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d <= 0 {
			return time.Time{}, bad
		}
		return now.Add(d), nil
	}
	up := strings.ToUpper(s)
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04Z07:00"} {
		if t, err := time.Parse(layout, up); err == nil {
			return t, nil
		}
	}
	for _, layout := range []string{"2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, up, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, bad
}

func (c *Commands) rollback(ctx context.Context, req Request, p *Parsed) (string, error) {
	return c.eng.Rollback(ctx, req.Actor, p.App, p.Region, p.SHA)
}

func (c *Commands) deploy(ctx context.Context, req Request, p *Parsed) (string, error) {
	return c.eng.Deploy(ctx, req.Actor, p.App, p.SHA, p.Region, p.Force)
}

// rerun runs a region's stage of a run again: the run named, or the newest one whose
// stage there failed or was cancelled.
func (c *Commands) rerun(ctx context.Context, req Request, p *Parsed) (string, error) {
	id := p.RunID
	if id != 0 {
		if r, err := c.eng.Run(ctx, id); err != nil || r.App != p.App {
			return "", fmt.Errorf("rerun: %s has no run %d", p.App, id)
		}
	} else {
		runs, err := c.eng.Runs(ctx, p.App, false, 50)
		if err != nil {
			return "", err
		}
		for _, r := range runs {
			for _, s := range r.Stages {
				if s.Region == p.Region && (s.State == store.StageFailed || s.State == store.StageRolledBack || s.State == store.StageCancelled) {
					id = r.ID
					break
				}
			}
			if id != 0 {
				break
			}
		}
		if id == 0 {
			return "", fmt.Errorf("rerun %s %s: no recent run failed there; name one with --run N", p.App, p.Region)
		}
	}
	return c.eng.Rerun(ctx, req.Actor, id, p.Region)
}

func (c *Commands) lock(ctx context.Context, req Request, p *Parsed) (string, error) {
	return c.eng.Lock(ctx, req.Actor, p.App, p.Region, p.Reason)
}

func (c *Commands) unlock(ctx context.Context, req Request, p *Parsed) (string, error) {
	return c.eng.Unlock(ctx, req.Actor, p.App, p.Region, p.Force)
}

func (c *Commands) status(ctx context.Context, req Request, p *Parsed) (string, error) {
	sts, err := c.eng.Status(ctx, p.App)
	if err != nil {
		return "", fmt.Errorf("status: %w", err)
	}
	return formatStatus(sts), nil
}

func (c *Commands) history(ctx context.Context, req Request, p *Parsed) (string, error) {
	hs, err := c.eng.History(ctx, p.App, p.Region, 15)
	if err != nil {
		return "", fmt.Errorf("history of %s: %w", p.App, err)
	}
	return formatHistory(p.App, p.Region, hs), nil
}

func (c *Commands) help(ctx context.Context, req Request, p *Parsed) (string, error) {
	implied := req.App != ""
	if p.Topic == "" {
		return helpAll(c.table, implied), nil
	}
	spec, ok := lookupIn(c.table, p.Topic)
	if !ok {
		var names []string
		for _, s := range c.table {
			names = append(names, s.name)
		}
		return "", fmt.Errorf("%s", unknownName("command", p.Topic, names, ""))
	}
	return helpOne(spec, implied), nil
}

// helpAll lists every command with its usage and summary.
func helpAll(table []*command, implied bool) string {
	var b strings.Builder
	if implied {
		b.WriteString("Commands (comment on a commit or pull request; the app is this repo's):\n")
	} else {
		b.WriteString("Commands (`/immunity COMMAND` in Slack, `immunity COMMAND` on the command line):\n")
	}
	for _, s := range table {
		fmt.Fprintf(&b, "  `%s` — %s\n", usage(s, implied), s.summary)
	}
	if implied {
		b.WriteString("`/help COMMAND` shows examples and who may run it.")
	} else {
		b.WriteString("`help COMMAND` shows examples and who may run it.")
	}
	return b.String()
}

// helpOne shows one command's usage, examples and who may run it.
func helpOne(s *command, implied bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "`%s` — %s\n", usage(s, implied), s.summary)
	b.WriteString("examples:\n")
	for _, e := range examples(s, implied) {
		fmt.Fprintf(&b, "  `%s`\n", e)
	}
	if s.action == "" {
		b.WriteString("who: anyone")
	} else {
		fmt.Fprintf(&b, "who: people granted %q for the region in the app's access config (production regions are granted separately); anyone when the app has no access config", s.action)
	}
	return b.String()
}

// examples are the table's, rewritten for a repo comment when the app is implied.
func examples(s *command, implied bool) []string {
	if !implied {
		return s.examples
	}
	var out []string
	for _, e := range s.examples {
		w := strings.Fields(e)
		if hasParam(s.params, "APP") && len(w) > 1 {
			w = append(w[:1], w[2:]...)
		}
		out = append(out, "/"+strings.Join(w, " "))
	}
	for _, e := range s.repo {
		if !slices.Contains(out, e) {
			out = append(out, e)
		}
	}
	return out
}
