package github

import (
	"context"
	"testing"

	"github.com/immunity-app/immunity/app/github/githubtest"
)

func TestInGitHubTeam(t *testing.T) {
	t.Parallel()
	contract := githubtest.LoadContract(t)
	h := newHarness(t)
	h.fake.AddTeamMember("Octocoders", "deployers", "octocat")
	ctx := context.Background()
	for _, c := range []struct {
		team, login string
		want        bool
	}{
		{"Octocoders/deployers", "octocat", true},
		{"Octocoders/deployers", "Codertocat", false},
		{"Octocoders/deployers", "octocat", true}, // cached: no second call
	} {
		got, err := h.app.Clients().InGitHubTeam(ctx, c.team, c.login)
		if err != nil || got != c.want {
			t.Errorf("InGitHubTeam(%s, %s) = %v, %v; want %v", c.team, c.login, got, err, c.want)
		}
	}
	if n := len(h.fake.Find("GET /orgs/Octocoders/teams/deployers/memberships/octocat")); n != 1 {
		t.Errorf("membership asked %d times, want 1 (cached)", n)
	}
	if _, err := h.app.Clients().InGitHubTeam(ctx, "no-slash", "octocat"); err == nil {
		t.Error("a team without org/ was accepted")
	}
	contract.ValidateAll(t, h.fake)
}
