package bot

import (
	"context"
	"fmt"
	"strconv"
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

// allowed checks the actor against the app's access grants for a region. Nobody passes
// unverified: an actor without an identity (an anonymous caller of the API or dashboard)
// is refused every region-changing action, whatever the app's access says. Admins (the
// server's own OS user, an admin token) pass every grant; an app without access rules is
// open to every verified identity.
func (c *Commands) allowed(ctx context.Context, a pipeline.Actor, action, appName, region string) (bool, string) {
	if a.ID == "" && !a.Admin {
		return false, fmt.Sprintf("%s %s/%s needs a verified identity: sign in to the dashboard, or use a personal API token (`immunity token create NAME`) or the server's local socket", action, appName, region)
	}
	cfg := c.eng.Config()
	app, ok := cfg.App(appName)
	if !ok || app.Access == nil || a.Admin {
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
		ok, note := c.matches(ctx, g, a, login)
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
		if login == "" && a.SlackUserID != "" {
			why += " (your Slack user " + a.SlackUserID + " is not linked to a GitHub login in slack.users)"
		}
	}
	if len(notes) > 0 {
		why += " (" + strings.Join(notes, "; ") + ")"
	}
	return false, why
}

// matches reports whether a grant names the person; notes say which lookups failed.
func (c *Commands) matches(ctx context.Context, g config.Grant, a pipeline.Actor, login string) (bool, []string) {
	slackID := a.SlackUserID
	if slackID != "" && contains(g.SlackUsers, slackID, false) {
		return true, nil
	}
	if login != "" && contains(g.GitHubUsers, login, true) {
		return true, nil
	}
	if a.GitHubID != 0 && contains(g.GitHubUsers, strconv.FormatInt(a.GitHubID, 10), false) {
		return true, nil
	}
	if a.Token != "" && contains(g.Tokens, a.Token, false) {
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
