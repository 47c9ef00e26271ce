package github

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	gh "github.com/google/go-github/v60/github"

	"github.com/immunity-app/immunity/bot"
)

// onIssueComment runs a command typed on a pull request or an issue of an app's repo.
// On a pull request the command is about the PR's commit (its head, or its merge commit
// once merged): `/promote` approves that release. An issue has no commit, so the commands
// that need one (`/promote` without --release, `/deploy to REGION`, a bare `/rollback`)
// are answered with where they work instead.
func (a *App) onIssueComment(ctx context.Context, ev *gh.IssueCommentEvent) (string, error) {
	line, ok := commandLine(ev.GetComment().GetBody())
	if !ok || isBot(ev.GetSender()) {
		return "ignored: not a command", nil
	}
	repo := ev.GetRepo()
	cl := a.clients.ForInstallation(ev.GetInstallation().GetID())
	owner, name, id, number := repo.GetOwner().GetLogin(), repo.GetName(), ev.GetComment().GetID(), ev.GetIssue().GetNumber()
	c := conversation{client: cl, owner: owner, name: name, login: ev.GetSender().GetLogin(), userID: ev.GetSender().GetID(), via: "github", replyNeeds: "issues: write",
		react: func(ctx context.Context, content string) error {
			_, _, err := cl.Reactions.CreateIssueCommentReaction(ctx, owner, name, id, content)
			return err
		},
		reply: func(ctx context.Context, body string) error {
			_, _, err := cl.Issues.CreateComment(ctx, owner, name, number, &gh.IssueComment{Body: gh.String(body)})
			return err
		},
	}
	app := a.impliedApp(repo.GetFullName())
	if !ev.GetIssue().IsPullRequest() {
		if needsCommit(line, app) {
			a.react(ctx, c, "confused")
			a.say(ctx, c, fmt.Sprintf("@%s `%s` works on a pull request or a commit: comment there and Immunity takes that commit's release. "+
				"Here, name it: `/promote REGION --release SHA`, `/deploy SHA to REGION`, `/rollback REGION`. Nothing was done.", c.login, line))
			return "ignored: a release command on an issue", nil
		}
	} else {
		c.replyNeeds = "pull_requests: write"
		c.commit = func(ctx context.Context) (string, string, error) { return pullCommit(ctx, cl, owner, name, number) }
	}
	return a.runCommands(ctx, c, app, []string{line})
}

// pullCommit is the commit a pull request stands for: its merge commit once merged (the
// commit a push to the base branch deployed), else its head.
func pullCommit(ctx context.Context, cl *gh.Client, owner, name string, number int) (sha, source string, err error) {
	pr, _, err := cl.PullRequests.Get(ctx, owner, name, number)
	if err != nil {
		return "", "", fmt.Errorf("pull request %s/%s#%d: %w", owner, name, number, err)
	}
	if pr.GetMerged() && pr.GetMergeCommitSHA() != "" {
		return pr.GetMergeCommitSHA(), fmt.Sprintf("the merge commit of pull request #%d", number), nil
	}
	if pr.GetHead().GetSHA() == "" {
		return "", "", fmt.Errorf("pull request %s/%s#%d has no head commit", owner, name, number)
	}
	return pr.GetHead().GetSHA(), fmt.Sprintf("the head of pull request #%d", number), nil
}

// needsCommit reports whether a command line only makes sense on a commit: a promote
// without --release, a deploy without a SHA, a rollback without a region. Lines that do
// not parse are left to the command layer, which explains them.
func needsCommit(line, app string) bool {
	p, err := bot.Parse(line, app)
	if err != nil {
		return false
	}
	switch p.Name {
	case "promote", "deploy":
		return p.SHA == ""
	case "rollback":
		return p.Region == ""
	}
	return false
}

// onCommitComment runs a command typed on a commit: `/promote` approves that commit's
// release, a bare `/rollback` rolls back every region where that commit is live.
func (a *App) onCommitComment(ctx context.Context, ev *gh.CommitCommentEvent) (string, error) {
	cm := ev.GetComment()
	line, ok := commandLine(cm.GetBody())
	if !ok || isBot(ev.GetSender()) {
		return "ignored: not a command", nil
	}
	repo := ev.GetRepo()
	cl := a.clients.ForInstallation(ev.GetInstallation().GetID())
	owner, name, id, sha := repo.GetOwner().GetLogin(), repo.GetName(), cm.GetID(), cm.GetCommitID()
	c := conversation{client: cl, owner: owner, name: name, login: ev.GetSender().GetLogin(), userID: ev.GetSender().GetID(), via: "github", replyNeeds: "contents: write",
		react: func(ctx context.Context, content string) error {
			_, _, err := cl.Reactions.CreateCommentReaction(ctx, owner, name, id, content)
			return err
		},
		reply: func(ctx context.Context, body string) error {
			_, _, err := cl.Repositories.CreateComment(ctx, owner, name, sha, &gh.RepositoryComment{Body: gh.String(body)})
			return err
		},
		commit: func(context.Context) (string, string, error) { return sha, "this commit", nil },
	}
	return a.runCommands(ctx, c, a.impliedApp(repo.GetFullName()), []string{line})
}

// liveRegions lists the regions of app where sha is live on at least one host.
func (a *App) liveRegions(ctx context.Context, app, sha string) ([]string, error) {
	st, err := a.eng.Status(ctx, app)
	if err != nil {
		return nil, fmt.Errorf("status of %s: %w", app, err)
	}
	var out []string
	for _, s := range st {
		if s.App != app {
			continue
		}
		for _, r := range s.Regions {
			if sameSHA(r.LiveSHA, sha) || anyLive(r.Live, sha) {
				out = append(out, r.Name)
			}
		}
	}
	return out, nil
}

func anyLive(live map[string]string, sha string) bool {
	for _, s := range live {
		if sameSHA(s, sha) {
			return true
		}
	}
	return false
}

func sameSHA(a, b string) bool {
	return a != "" && b != "" && (strings.HasPrefix(a, b) || strings.HasPrefix(b, a))
}

func short(sha string) string {
	if len(sha) > 7 {
		return sha[:7]
	}
	return sha
}

// isBot is true for comments by apps (our own replies included).
func isBot(u *gh.User) bool { return u.GetType() == "Bot" }

// checkRunEvent is the part of a check_run delivery we use. It is decoded here rather than
// by go-github, whose timestamps refuse some payloads GitHub has sent (a check suite's
// "2018-04-25 20:42:10"), and a button must not be lost to a field we do not read.
type checkRunEvent struct {
	Action   string `json:"action"`
	CheckRun struct {
		ID         int64  `json:"id"`
		Name       string `json:"name"`
		HeadSHA    string `json:"head_sha"`
		ExternalID string `json:"external_id"`
	} `json:"check_run"`
	RequestedAction struct {
		Identifier string `json:"identifier"`
	} `json:"requested_action"`
	Repository   eventRepo         `json:"repository"`
	Installation eventInstallation `json:"installation"`
	Sender       sender            `json:"sender"`
}

// eventRepo is the repository of a delivery decoded by us.
type eventRepo struct {
	FullName string `json:"full_name"`
	Name     string `json:"name"`
	Owner    struct {
		Login string `json:"login"`
	} `json:"owner"`
}

// eventInstallation is the installation of an App's delivery.
type eventInstallation struct {
	ID int64 `json:"id"`
}

// sender is who caused a delivery: the user id is who they are, the login their name.
type sender struct {
	Login string `json:"login"`
	ID    int64  `json:"id"`
}

// The identifiers of the check run buttons (checks.ActionPromote, checks.ActionRollback).
const (
	buttonPromote  = "promote"
	buttonRollback = "rollback"
)

// onCheckRun handles a check run's buttons and re-run requests.
func (a *App) onCheckRun(ctx context.Context, ev *checkRunEvent) (string, error) {
	a.remember(ctx, ev.Repository.FullName, ev.Installation.ID, ev.Repository.Owner.Login)
	switch ev.Action {
	case "requested_action":
		return a.onCheckRunAction(ctx, *ev)
	case "rerequested":
		return a.onRerequest(ctx, *ev)
	}
	return "ignored: check_run " + ev.Action, nil
}

// buttonConversation is a press of a check run's button (pressed: its name). A button has
// no comment to react to or reply under, so the answer is recorded in the run's log for
// that region (Engine.Answer), and the reporter shows it in the check run's output.
func (a *App) buttonConversation(ev checkRunEvent, runID int64, region, pressed string) conversation {
	c := conversation{client: a.clients.ForInstallation(ev.Installation.ID), owner: ev.Repository.Owner.Login,
		name: ev.Repository.Name, login: ev.Sender.Login, userID: ev.Sender.ID, via: "button"}
	c.reply = func(ctx context.Context, body string) error {
		return a.answer(ctx, c.login, runID, region, pressed, body)
	}
	return c
}

// answer records what someone who pressed a button of a run's region check run was told.
func (a *App) answer(ctx context.Context, login string, runID int64, region, pressed, body string) error {
	return a.eng.Answer(ctx, runID, region, fmt.Sprintf("%s pressed %s: %s", login, pressed, clipAnswer(body)))
}

// maxAnswer bounds an answer kept in a run's log for a check run (a command's reply can
// list much more).
const maxAnswer = 600

func clipAnswer(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > maxAnswer {
		return string(r[:maxAnswer-1]) + "…"
	}
	return s
}

// checkRunRef finds the run and region a check run of ours reports: from its external id
// (run/ID/REGION, or run/ID/REGION/ATTEMPT for a stage's later check runs), else from the
// stored check run ids.
func (a *App) checkRunRef(ctx context.Context, ev checkRunEvent) (int64, string, error) {
	cr := ev.CheckRun
	if rest, ok := strings.CutPrefix(cr.ExternalID, "run/"); ok {
		if id, region, ok := strings.Cut(rest, "/"); ok {
			region, _, _ = strings.Cut(region, "/")
			if n, err := strconv.ParseInt(id, 10, 64); err == nil && region != "" {
				return n, region, nil
			}
		}
	}
	runID, region, err := a.st.CheckRunByID(ctx, cr.ID)
	if err != nil {
		return 0, "", fmt.Errorf("check run %d (%s) is not one of ours: %w", cr.ID, cr.Name, err)
	}
	return runID, region, nil
}

// onCheckRunAction runs a check run button (promote, rollback) as the command it stands
// for; whatever it is answered (done, refused, failed) is shown on the check run.
func (a *App) onCheckRunAction(ctx context.Context, ev checkRunEvent) (string, error) {
	runID, region, err := a.checkRunRef(ctx, ev)
	if err != nil {
		return "ignored: " + err.Error(), nil
	}
	sha := ev.CheckRun.HeadSHA
	app := a.impliedApp(ev.Repository.FullName)
	var line, pressed string
	switch id := ev.RequestedAction.Identifier; id {
	case buttonPromote:
		line, pressed = fmt.Sprintf("/promote %s --release %s", region, sha), "Promote"
	case buttonRollback:
		pressed = "Roll back"
		// An old check run's button must not roll back a newer release.
		live, err := a.liveRegions(ctx, app, sha)
		if err != nil {
			return "", err
		}
		if !slices.Contains(live, region) {
			c := a.buttonConversation(ev, runID, region, pressed)
			a.say(ctx, c, fmt.Sprintf("%s is no longer live in %s, so nothing was rolled back; roll back the release live there with `/rollback %s`.", short(sha), region, region))
			return fmt.Sprintf("ignored: rollback button of %s, which is no longer live in %s", short(sha), region), nil
		}
		line = "/rollback " + region
	default:
		c := a.buttonConversation(ev, runID, region, "a button")
		a.say(ctx, c, fmt.Sprintf("this check run has no button %q (it may be from an older version of Immunity); nothing was done.", id))
		return "ignored: unknown action " + id, nil
	}
	c := a.buttonConversation(ev, runID, region, pressed)
	c.commit = func(context.Context) (string, string, error) { return sha, "this check run's commit", nil }
	return a.runCommands(ctx, c, app, []string{line})
}

// onRerequest re-runs the region stage a check run reports, for someone who may write;
// a refusal or a failure is shown on the check run.
func (a *App) onRerequest(ctx context.Context, ev checkRunEvent) (string, error) {
	runID, region, err := a.checkRunRef(ctx, ev)
	if err != nil {
		return "ignored: " + err.Error(), nil
	}
	c := a.buttonConversation(ev, runID, region, "Re-run")
	app := a.impliedApp(ev.Repository.FullName)
	if run, err := a.st.Run(ctx, runID); err == nil {
		app = run.App // the check run's own run says whose it is
	}
	return a.rerun(ctx, c, app, ev.CheckRun.HeadSHA, "Re-run", runID, []string{region})
}

// rerun re-runs regions of a run for someone who may write (pressed: the button), and
// answers on each region's check run when the re-run is refused or fails (a re-run that
// starts shows itself).
func (a *App) rerun(ctx context.Context, c conversation, app, sha, pressed string, runID int64, regions []string) (string, error) {
	tell := func(region, body string) {
		if err := a.answer(ctx, c.login, runID, region, pressed, body); err != nil {
			a.log.Warn("github button answer not recorded", "run", runID, "region", region, "err", err, "answer", body)
		}
	}
	ok, level, err := c.mayWrite(ctx)
	if err != nil {
		return "", err
	}
	if !ok {
		why := fmt.Sprintf("GitHub permission %q on %s; write, maintain or admin needed", level, c.repo())
		for _, region := range regions {
			a.eng.Audit(ctx, c.actor(), "rerun", app, region, sha, fmt.Sprintf("run %d", runID), "refused", why)
			tell(region, fmt.Sprintf("@%s re-running needs write access to %s; you have %s. Nothing was done.", c.login, c.repo(), orNone(level)))
		}
		return "refused rerun for " + c.login, nil
	}
	// Each re-run is the command `rerun`, so the app's access grants (deploy) judge it as
	// on every other surface; GitHub's write access alone is not enough.
	var out []string
	for _, region := range regions {
		r := a.cmd.Exec(ctx, bot.Request{Actor: c.actor(), App: app, Text: fmt.Sprintf("rerun %s %s --run %d", app, region, runID),
			SHA: sha, SHASource: "this check run's commit"})
		if !r.OK {
			tell(region, fmt.Sprintf("@%s %s", c.login, r.Text))
			out = append(out, "refused: "+r.Text)
			continue
		}
		out = append(out, r.Text)
	}
	return strings.Join(out, "; "), nil
}
