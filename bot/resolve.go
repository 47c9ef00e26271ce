package bot

import (
	"context"
	"fmt"
	"strings"

	"github.com/immunity-app/immunity/pipeline"
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
	switch spec.name {
	case "promote":
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

func appNames(cfg *pipeline.Config) []string {
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
