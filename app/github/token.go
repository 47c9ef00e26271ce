package github

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	gh "github.com/google/go-github/v60/github"
)

// CloneToken returns a short-lived installation token that may read repo ("owner/name"),
// for fetching its code over HTTPS (as user x-access-token).
func (c *Clients) CloneToken(ctx context.Context, repo string) (string, error) {
	id, err := c.st.InstallationFor(ctx, repo)
	if err != nil {
		return "", err
	}
	if id == 0 {
		if _, err := c.ForRepo(ctx, repo); err != nil {
			return "", err
		}
		if id, err = c.st.InstallationFor(ctx, repo); err != nil {
			return "", err
		}
	}
	_, name, _ := splitRepo(repo)
	tok, _, err := c.App().Apps.CreateInstallationToken(ctx, id, &gh.InstallationTokenOptions{
		Repositories: []string{name}, Permissions: &gh.InstallationPermissions{Contents: gh.String("read")}})
	if err != nil {
		return "", fmt.Errorf("installation token for %s: %w", repo, err)
	}
	return tok.GetToken(), nil
}

// CloneURL is the HTTPS address of repo's code on the GitHub whose API is at apiURL:
// https://github.com/owner/name.git, or https://HOST/owner/name.git for GitHub Enterprise.
func CloneURL(apiURL, repo string) string {
	u, err := url.Parse(apiURL)
	if err != nil || u.Host == "" || u.Host == "api.github.com" {
		return "https://github.com/" + repo + ".git"
	}
	host := strings.TrimPrefix(u.Host, "api.")
	return u.Scheme + "://" + host + "/" + repo + ".git"
}
