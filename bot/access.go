package bot

import (
	"context"
	"fmt"
	"strings"

	"github.com/immunity-app/immunity/pipeline"
	"github.com/immunity-app/immunity/pipeline/config"
)

// Memberships answers the group questions access grants ask. Slack's implementation asks
// usergroups.users.list; GitHub's asks the team membership API.
type Memberships interface {
	InSlackGroup(ctx context.Context, group, userID string) (bool, error)
	// InGitHubTeam: team is "org/team-slug".
	InGitHubTeam(ctx context.Context, team, login string) (bool, error)
}

// trustedVia are the doors only the server's own operator can use: the CLI talks to the
// API on the server's listen address, the demo and the engine are the server itself.
var trustedVia = map[string]bool{"cli": true, "demo": true, "engine": true}

// allowed checks the actor against the app's access grants for a region.
func (c *Commands) allowed(ctx context.Context, a pipeline.Actor, action, appName, region string) (bool, string) {
	cfg := c.eng.Config()
	app, ok := cfg.App(appName)
	if !ok || app.Access == nil || trustedVia[a.Via] {
		return true, ""
	}
	r, _, ok := app.Region(region)
	if !ok {
		return false, fmt.Sprintf("no region %q in app %s", region, appName)
	}
	login := a.GitHubLogin
	if login == "" && a.SlackUserID != "" {
		login = cfg.Slack.Users[a.SlackUserID]
	}
	var notes []string
	for _, g := range app.Access.Grants(r) {
		if !g.Allows(action) {
			continue
		}
		ok, note := c.matches(ctx, g, a.SlackUserID, login)
		if ok {
			return true, ""
		}
		notes = append(notes, note...)
	}
	kind := "non_production"
	if _, own := app.Access.Regions[r.Name]; own {
		kind = "regions." + r.Name
	} else if r.Production {
		kind = "production"
	}
	why := fmt.Sprintf("%s may not %s %s/%s: no grant of %q under access.%s matches you", who(a, login), action, appName, region, action, kind)
	if a.Via == "slack" || a.Via == "button" {
		if login == "" {
			why += " (your Slack user " + a.SlackUserID + " is not linked to a GitHub login in slack.users)"
		}
	}
	if len(notes) > 0 {
		why += " (" + strings.Join(notes, "; ") + ")"
	}
	return false, why
}

// matches reports whether a grant names the person; notes say which lookups failed.
func (c *Commands) matches(ctx context.Context, g config.Grant, slackID, login string) (bool, []string) {
	if slackID != "" && contains(g.SlackUsers, slackID, false) {
		return true, nil
	}
	if login != "" && contains(g.GitHubUsers, login, true) {
		return true, nil
	}
	if c.members == nil {
		return false, nil
	}
	var notes []string
	if slackID != "" {
		for _, grp := range g.SlackGroups {
			ok, err := c.members.InSlackGroup(ctx, grp, slackID)
			if err != nil {
				notes = append(notes, fmt.Sprintf("could not check Slack group %s: %v", grp, err))
			}
			if ok {
				return true, nil
			}
		}
	}
	if login != "" {
		for _, team := range g.GitHubTeams {
			ok, err := c.members.InGitHubTeam(ctx, team, login)
			if err != nil {
				notes = append(notes, fmt.Sprintf("could not check GitHub team %s: %v", team, err))
			}
			if ok {
				return true, nil
			}
		}
	}
	return false, notes
}

func contains(list []string, s string, fold bool) bool {
	for _, x := range list {
		if x == s || (fold && strings.EqualFold(x, s)) {
			return true
		}
	}
	return false
}

func who(a pipeline.Actor, login string) string {
	switch {
	case a.Name != "":
		return a.Name
	case login != "":
		return login
	case a.SlackUserID != "":
		return "<@" + a.SlackUserID + ">"
	}
	return "you"
}

// MemberFuncs makes Memberships from two lookups, either of which may be nil (then no
// one is a member): slackbot.Groups.InSlackGroup and the GitHub App's team check.
type MemberFuncs struct {
	SlackGroup func(ctx context.Context, group, userID string) (bool, error)
	GitHubTeam func(ctx context.Context, team, login string) (bool, error)
}

// InSlackGroup asks SlackGroup.
func (m MemberFuncs) InSlackGroup(ctx context.Context, group, userID string) (bool, error) {
	if m.SlackGroup == nil {
		return false, nil
	}
	return m.SlackGroup(ctx, group, userID)
}

// InGitHubTeam asks GitHubTeam.
func (m MemberFuncs) InGitHubTeam(ctx context.Context, team, login string) (bool, error) {
	if m.GitHubTeam == nil {
		return false, nil
	}
	return m.GitHubTeam(ctx, team, login)
}
