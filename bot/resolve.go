package bot

import (
	"context"
	"fmt"
	"strings"

	"github.com/immunity-app/immunity/pipeline"
	"github.com/immunity-app/immunity/pipeline/config"
)

// resolve checks app and region names against the config, and fills in what a GitHub
// comment may leave out (the region waiting, the commit commented on). It returns "" or
// the answer that explains what is wrong.
func (c *Commands) resolve(ctx context.Context, req Request, spec *command, p *Parsed) string {
	if p.App == "" {
		return ""
	}
	cfg := c.eng.Config()
	app, ok := cfg.App(p.App)
	if !ok {
		return unknownName("app", p.App, appNames(cfg), "")
	}
	if p.Region != "" {
		if _, _, ok := app.Region(p.Region); !ok {
			return unknownName("region", p.Region, app.RegionNames(), "app "+app.Name)
		}
	}
	for _, r := range p.Regions {
		if _, _, ok := app.Region(r); !ok {
			return unknownName("region", r, app.RegionNames(), "app "+app.Name)
		}
	}
	switch spec.name {
	case "promote":
		if p.SHA == "" && req.SHA != "" {
			return c.promoteCommit(ctx, req, p)
		}
		if p.Region == "" {
			return c.pickRegion(ctx, p, "waiting for promotion", func(r pipeline.RegionStatus) bool { return r.Waiting != nil })
		}
	case "rollback":
		if p.Region == "" {
			return c.pickRollback(ctx, req, p)
		}
	case "deploy":
		if p.SHA == "" {
			p.SHA = req.SHA
		}
		if p.SHA == "" {
			return fmt.Sprintf("which release? usage: %s", usage(spec, req.App != ""))
		}
	}
	return ""
}

func appNames(cfg *config.Config) []string {
	var out []string
	for _, a := range cfg.Apps {
		out = append(out, a.Name)
	}
	return out
}

// pickRegion fills p.Region with the one region matching want, or explains.
func (c *Commands) pickRegion(ctx context.Context, p *Parsed, what string, want func(pipeline.RegionStatus) bool) string {
	names, err := c.regionsWhere(ctx, p.App, want)
	if err != nil {
		return err.Error()
	}
	switch len(names) {
	case 0:
		return fmt.Sprintf("no region of %s is %s; name one: `/%s REGION`", p.App, what, p.Name)
	case 1:
		p.Region = names[0]
		return ""
	}
	return fmt.Sprintf("%s are %s; name one: `/%s %s`", strings.Join(names, " and "), what, p.Name, names[0])
}

// promoteCommit fills in the release a `/promote` typed on a commit or pull request
// means: that commit, in the region (named, or the only one) where it waits for promotion.
// When it is not the release waiting, it says so and names the one that is.
func (c *Commands) promoteCommit(ctx context.Context, req Request, p *Parsed) string {
	sts, err := c.eng.Status(ctx, p.App)
	if err != nil {
		return fmt.Sprintf("status of %s: %v", p.App, err)
	}
	var mine, others []pipeline.RegionStatus
	for _, st := range sts {
		for _, r := range st.Regions {
			switch {
			case r.Waiting == nil || (p.Region != "" && r.Name != p.Region):
			case sameSHA(r.Waiting.SHA, req.SHA):
				mine = append(mine, r)
			default:
				others = append(others, r)
			}
		}
	}
	if len(mine) == 1 {
		p.Region, p.SHA = mine[0].Name, mine[0].Waiting.SHA
		return ""
	}
	if len(mine) > 1 {
		var names []string
		for _, r := range mine {
			names = append(names, r.Name)
		}
		return fmt.Sprintf("%s (%s) waits for promotion to %s; name one: `/promote %s`", source(req), short(req.SHA), strings.Join(names, " and "), names[0])
	}
	where := ""
	if p.Region != "" {
		where = " to " + p.Region
	}
	msg := fmt.Sprintf("%s (%s) is not the release waiting for promotion%s, so nothing was promoted", source(req), short(req.SHA), where)
	if len(others) == 0 {
		return msg + "; no release of " + p.App + " is waiting for promotion" + where + "."
	}
	var waiting []string
	for _, r := range others {
		waiting = append(waiting, fmt.Sprintf("%s for %s", short(r.Waiting.SHA), r.Name))
	}
	o := others[0]
	return fmt.Sprintf("%s; waiting: %s. To promote that one, comment on its commit or use `/promote %s --release %s`.",
		msg, strings.Join(waiting, ", "), o.Name, short(o.Waiting.SHA))
}

// source names where a request's commit came from, capitalized to start an answer.
func source(req Request) string {
	s := req.SHASource
	if s == "" {
		s = "the commit"
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// pickRollback chooses the region a `/rollback` on a commit means: where that commit is live.
func (c *Commands) pickRollback(ctx context.Context, req Request, p *Parsed) string {
	if req.SHA == "" {
		return "which region? usage: `/rollback REGION [--to SHA]`"
	}
	return c.pickRegion(ctx, p, "running "+short(req.SHA), func(r pipeline.RegionStatus) bool {
		for _, sha := range r.Live {
			if sameSHA(sha, req.SHA) {
				return true
			}
		}
		return false
	})
}

func (c *Commands) regionsWhere(ctx context.Context, app string, want func(pipeline.RegionStatus) bool) ([]string, error) {
	sts, err := c.eng.Status(ctx, app)
	if err != nil {
		return nil, fmt.Errorf("status of %s: %w", app, err)
	}
	var out []string
	for _, st := range sts {
		for _, r := range st.Regions {
			if want(r) {
				out = append(out, r.Name)
			}
		}
	}
	return out, nil
}

// sameSHA reports whether two commit ids, either possibly abbreviated, name the same commit.
func sameSHA(a, b string) bool {
	if a == "" || b == "" {
		return false
	}
	return strings.HasPrefix(a, b) || strings.HasPrefix(b, a)
}

func short(sha string) string {
	if len(sha) > 7 {
		return sha[:7]
	}
	return sha
}
