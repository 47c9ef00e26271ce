package github

import (
	"strings"
)

// Manifest is the GitHub App manifest (app.yml at the repo root says the same; a test
// keeps them equal). serverURL is where GitHub reaches this server.
func Manifest(name, serverURL string) map[string]any {
	base := strings.TrimRight(serverURL, "/")
	if name == "" {
		name = "Immunity"
	}
	return map[string]any{
		"name":        name,
		"url":         "https://github.com/immunity-app/immunity",
		"description": "Staged deploys through regions, with canary judging, check runs and ChatOps.",
		"public":      false,
		"hook_attributes": map[string]any{
			"url":    base + "/webhooks/github",
			"active": true,
		},
		"redirect_url": base + "/github/setup/callback",
		// "Sign in with GitHub" on the dashboard comes back here.
		"callback_urls": []any{base + "/signin/github/callback"},
		"default_events": []any{
			"check_run", "check_suite", "commit_comment", "deployment_protection_rule", "issue_comment", "push",
		},
		"default_permissions": map[string]any{
			"actions":       "read",
			"checks":        "write",
			"deployments":   "write",
			"contents":      "read",
			"issues":        "write",
			"pull_requests": "write",
			"metadata":      "read",
		},
	}
}
