package github

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	gh "github.com/google/go-github/v60/github"
)

// teamTTL is how long a team membership answer is trusted.
const teamTTL = 5 * time.Minute

type teamAnswer struct {
	member bool
	at     time.Time
}

// InGitHubTeam answers the access grants that name a team ("org/team-slug"): whether
// login is an active member. It is the GitHub half of bot.Memberships. The App needs the
// organization permission members: read for it; without it GitHub refuses and the
// grant does not match.
func (c *Clients) InGitHubTeam(ctx context.Context, team, login string) (bool, error) {
	org, slug, ok := strings.Cut(team, "/")
	if !ok || org == "" || slug == "" || login == "" {
		return false, fmt.Errorf("team %q: expected org/team-slug", team)
	}
	key := strings.ToLower(team + "\x00" + login)
	c.mu.Lock()
	a, cached := c.teams[key]
	c.mu.Unlock()
	if cached && time.Since(a.at) < teamTTL {
		return a.member, nil
	}
	member, err := c.teamMember(ctx, org, slug, login)
	if err != nil {
		return false, err
	}
	c.mu.Lock()
	c.teams[key] = teamAnswer{member: member, at: time.Now()}
	c.mu.Unlock()
	return member, nil
}

func (c *Clients) teamMember(ctx context.Context, org, slug, login string) (bool, error) {
	inst, _, err := c.App().Apps.FindOrganizationInstallation(ctx, org)
	if err != nil {
		return false, fmt.Errorf("find the installation of the GitHub App on %s: %w", org, err)
	}
	m, _, err := c.ForInstallation(inst.GetID()).Teams.GetTeamMembershipBySlug(ctx, org, slug, login)
	var ge *gh.ErrorResponse
	if errors.As(err, &ge) && ge.Response != nil && ge.Response.StatusCode == http.StatusNotFound {
		return false, nil // not a member (or no such team)
	}
	if err != nil {
		return false, fmt.Errorf("membership of %s in %s/%s: %w", login, org, slug, err)
	}
	return m.GetState() == "active", nil
}
