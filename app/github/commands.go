package github

import (
	"context"
	"fmt"
	"strings"

	gh "github.com/google/go-github/v60/github"

	"github.com/immunity-app/immunity/bot"
	"github.com/immunity-app/immunity/pipeline"
)

// commandWords are the command names a comment may start with (the bot's table); other
// comments starting with a slash ("/cc", "/lgtm") are someone else's and left alone.
var commandWords = map[string]bool{
	"promote": true, "rollback": true, "deploy": true, "status": true,
	"lock": true, "unlock": true, "history": true, "help": true,
}

// commandLine returns the command in a comment body: its first non-empty line when that
// starts with /WORD for a known WORD, or with /immunity or @immunity.
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
		return line, ok && commandWords[name]
	}
	return "", false
}

// conversation is where a command came from and how to answer there.
type conversation struct {
	client      *gh.Client
	owner, name string                                          // the repo
	login       string                                          // who asked
	via         string                                          // github, button
	react       func(ctx context.Context, content string) error // nil: nowhere to react
	reply       func(ctx context.Context, body string) error    // nil: nowhere to reply
}

func (c conversation) repo() string { return c.owner + "/" + c.name }

func (c conversation) actor() pipeline.Actor {
	return pipeline.Actor{Name: c.login, Via: c.via, GitHubLogin: c.login}
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

// runCommands checks the sender's permission, then runs each command line and answers:
// eyes on receipt, +1 when every command succeeded, -1 when one failed or was refused,
// confused when a command could not be run at all.
func (a *App) runCommands(ctx context.Context, c conversation, app, sha string, lines []string) (string, error) {
	a.react(ctx, c, "eyes")
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
	var out []string
	allOK := true
	for _, l := range lines {
		r := a.cmd.Exec(ctx, bot.Request{Actor: c.actor(), App: app, Text: l, SHA: sha})
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
	if err := c.reply(ctx, body); err != nil {
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
