package github

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	gh "github.com/google/go-github/v60/github"

	"github.com/immunity-app/immunity/bot"
	"github.com/immunity-app/immunity/pipeline"
)

// commandLine returns the command in a comment body: its first non-empty line when that
// starts with /WORD for a command of the bot's table or a near miss of one (`/promtoe`,
// answered with "did you mean"), or with /immunity or @immunity. Other comments starting
// with a slash ("/cc", "/lgtm") are someone else's and left alone.
func commandLine(body string) (string, bool) {
	for _, line := range strings.Split(body, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		f := strings.Fields(strings.ToLower(line))
		w := f[0]
		if w == "/immunity" || w == "@immunity" {
			return line, true
		}
		name, ok := strings.CutPrefix(w, "/")
		return line, ok && (bot.IsCommand(name) || len(bot.SuggestCommand(name)) > 0)
	}
	return "", false
}

// conversation is where a command came from and how to answer there.
type conversation struct {
	client      *gh.Client
	owner, name string                                          // the repo
	login       string                                          // who asked: their login, for display
	userID      int64                                           // and their GitHub user id, who they are
	via         string                                          // github, button
	react       func(ctx context.Context, content string) error // nil: nowhere to react
	reply       func(ctx context.Context, body string) error    // nil: nowhere to reply
	// replyNeeds is the App permission reply needs ("contents: write"), named in the
	// warning when GitHub refuses the reply with 403.
	replyNeeds string
	// commit finds the commit the command was typed on and says what it is ("this
	// commit", "the head of pull request #5"); nil: none. It runs after the permission check.
	commit func(ctx context.Context) (sha, source string, err error)
}

func (c conversation) repo() string { return c.owner + "/" + c.name }

func (c conversation) actor() pipeline.Actor {
	a := pipeline.Actor{Name: c.login, Via: c.via, GitHubLogin: c.login, GitHubID: c.userID}
	if c.userID != 0 {
		a.ID = "github:" + strconv.FormatInt(c.userID, 10)
	}
	return a
}

// mayWrite reports whether the sender has write, maintain or admin permission on the repo,
// and the permission they have.
func (c conversation) mayWrite(ctx context.Context) (bool, string, error) {
	p, _, err := c.client.Repositories.GetPermissionLevel(ctx, c.owner, c.name, c.login)
	if err != nil {
		return false, "", fmt.Errorf("permission of %s on %s: %w", c.login, c.repo(), err)
	}
	// permission folds maintain into write and triage into read.
	level := p.GetPermission()
	switch level {
	case "admin", "maintain", "write":
		return true, level, nil
	}
	return false, level, nil
}

// runCommands checks the sender's permission, finds the commit commented on, then runs
// each command line and answers: eyes on receipt, +1 when every command succeeded, -1
// when one failed or was refused, confused when a command could not be run at all.
func (a *App) runCommands(ctx context.Context, c conversation, app string, lines []string) (string, error) {
	a.react(ctx, c, "eyes")
	for _, l := range lines {
		// A command that does not parse changes nothing: say why at once, whoever typed it.
		if _, err := bot.Parse(l, app); err != nil {
			a.react(ctx, c, "confused")
			a.say(ctx, c, fmt.Sprintf("@%s %v", c.login, err))
			return "not understood: " + l, nil
		}
	}
	ok, level, err := c.mayWrite(ctx)
	if err != nil {
		a.react(ctx, c, "confused")
		a.say(ctx, c, fmt.Sprintf("@%s I could not check your permission on %s, so nothing was done: %v", c.login, c.repo(), err))
		return "", err
	}
	if !ok {
		for _, l := range lines {
			verb, region := commandVerb(l)
			a.eng.Audit(ctx, c.actor(), verb, app, region, "", l, "refused",
				fmt.Sprintf("GitHub permission %q on %s; write, maintain or admin needed", level, c.repo()))
		}
		a.react(ctx, c, "-1")
		a.say(ctx, c, fmt.Sprintf("@%s `%s` needs write access to %s; you have %s. Nothing was done.", c.login, strings.Join(lines, "`, `"), c.repo(), orNone(level)))
		return fmt.Sprintf("refused %s: permission %s", c.login, level), nil
	}
	var sha, source string
	if c.commit != nil {
		if sha, source, err = c.commit(ctx); err != nil {
			a.react(ctx, c, "confused")
			a.say(ctx, c, fmt.Sprintf("@%s I could not find the commit this comment is about, so nothing was done: %v", c.login, err))
			return "", err
		}
	}
	lines, done, err := a.expandRollback(ctx, c, app, sha, source, lines)
	if err != nil || done != "" {
		return done, err
	}
	var out []string
	allOK := true
	for _, l := range lines {
		r := a.cmd.Exec(ctx, bot.Request{Actor: c.actor(), App: app, Text: l, SHA: sha, SHASource: source})
		allOK = allOK && r.OK
		out = append(out, r.Text)
	}
	if allOK {
		a.react(ctx, c, "+1")
	} else {
		a.react(ctx, c, "-1")
	}
	a.say(ctx, c, strings.Join(out, "\n\n"))
	return fmt.Sprintf("ran %q for %s: ok=%v", lines, c.login, allOK), nil
}

// expandRollback turns a bare `/rollback` typed on a commit (or a pull request) into one
// rollback per region where that commit is live; when it is live nowhere it answers so
// and returns what it did in done.
func (a *App) expandRollback(ctx context.Context, c conversation, app, sha, source string, lines []string) (out []string, done string, err error) {
	if len(lines) != 1 || app == "" || sha == "" {
		return lines, "", nil
	}
	if verb, region := commandVerb(lines[0]); verb != "rollback" || region != "" {
		return lines, "", nil
	}
	regions, err := a.liveRegions(ctx, app, sha)
	if err != nil {
		return nil, "", err
	}
	if len(regions) == 0 {
		if source == "" {
			source = "this commit"
		}
		a.react(ctx, c, "confused")
		a.say(ctx, c, fmt.Sprintf("@%s %s (%s) is not live in any region of %s, so there is nothing to roll back.", c.login, source, short(sha), app))
		return nil, "rollback: commit not live", nil
	}
	for _, r := range regions {
		out = append(out, "/rollback "+r)
	}
	return out, "", nil
}

func orNone(s string) string {
	if s == "" {
		return "no access"
	}
	return s
}

// commandVerb returns a command line's verb and, when given, the word after it (a region
// for the commands that change one), for the audit log.
func commandVerb(line string) (verb, region string) {
	f := strings.Fields(line)
	if len(f) > 0 && (strings.EqualFold(f[0], "/immunity") || strings.EqualFold(f[0], "@immunity")) {
		f = f[1:]
	}
	if len(f) == 0 {
		return "", ""
	}
	verb = strings.ToLower(strings.TrimPrefix(f[0], "/"))
	if len(f) > 1 && !strings.HasPrefix(f[1], "-") {
		region = f[1]
	}
	return verb, region
}

func (a *App) react(ctx context.Context, c conversation, content string) {
	if c.react == nil {
		return
	}
	if err := c.react(ctx, content); err != nil {
		a.log.Warn("github reaction", "repo", c.repo(), "content", content, "err", err)
	}
}

func (a *App) say(ctx context.Context, c conversation, body string) {
	if c.reply == nil || body == "" {
		a.log.Info("github command answer", "repo", c.repo(), "actor", c.login, "text", body)
		return
	}
	err := c.reply(ctx, body)
	var ge *gh.ErrorResponse
	if errors.As(err, &ge) && ge.Response != nil && ge.Response.StatusCode == http.StatusForbidden && c.replyNeeds != "" {
		// Least privilege: the App may lack the permission this reply needs (commit
		// comments need contents: write; the manifest asks for contents: read).
		a.react(ctx, c, "confused")
		a.log.Warn("github reply refused: the App lacks a permission; grant it in the App's settings (Permissions) to get answers here",
			"repo", c.repo(), "needs", c.replyNeeds, "err", err, "answer", body)
		return
	}
	if err != nil {
		a.log.Warn("github reply", "repo", c.repo(), "err", err)
	}
}

// impliedApp is the app a repo's comments talk about: the only app bound to the repo.
func (a *App) impliedApp(repo string) string {
	apps := a.appsFor(repo)
	if len(apps) == 1 {
		return apps[0].Name
	}
	return ""
}
