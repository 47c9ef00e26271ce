// Package github is Immunity's GitHub App: the webhook endpoint, its signature check,
// delivery persistence and de-duplication, event routing, installation clients and the
// App manifest setup page.
//
// The model: a delivery is verified (HMAC-SHA256 of the raw body, constant time), recorded
// in github_deliveries and answered 202 at once; the work then runs on a tracked goroutine
// that Close drains. A delivery id seen before, or a second delivery of the same comment
// or push (dedupe key), does nothing. Events become engine calls:
//
//	push on an app's branch           → Engine.StartRun
//	issue_comment / commit_comment    → a command (/promote prod3, /rollback, /lock …) about
//	                                    the commit commented on, or a pull request's head
//	check_run requested_action        → the same command, from the check run's buttons
//	check_run rerequested             → Engine.Rerun of that region's stage
//	check_suite rerequested           → Engine.Rerun of each failed stage of that commit's run
//	installation(_repositories)       → which installation serves which repo
//
// Every command first checks the sender's permission on the repo (write, maintain or
// admin); refusals are audited. Commands go through the shared command layer (bot), so
// the grammar and access rules are the same as in Slack. Reporting runs back to GitHub is
// the checks package's job; it gets its clients from Clients here.
//
// Clients authenticate as the App (JWT) or one of its installations (ghinstallation, one
// cached transport each) against a configurable API URL, over one transport that retries
// 5xx and rate limits, honouring Retry-After and X-RateLimit-Reset. Clients also answer
// the bot's team-membership questions (InGitHubTeam). Setup serves the manifest flow
// that creates the App when no credentials are configured.
package github
