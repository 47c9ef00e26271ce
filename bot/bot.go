// Package bot is Immunity's ChatOps layer: one command grammar shared by Slack slash
// commands and buttons, GitHub comments and the CLI, and the authorization of who may
// change which region.
//
// The model: a caller turns whatever it received into a Request (who, through which door,
// the text typed, and the app implied by the repo for GitHub comments) and calls
// Commands.Exec, which answers a Reply. Exec parses the text against one explicit command
// table (name, syntax, summary, examples, the access action it needs, handler); `help`,
// usage lines and "did you mean" answers are all derived from that table. Names of apps
// and regions are checked against the config, then the actor is checked against the app's
// access grants (refusals are answered and audited), then the handler calls the engine,
// which audits every region-changing call itself.
//
// Slack (slash commands, interactions, one thread per run) lives in bot/slackbot; the
// console rendering of the same thread is ConsoleThread in this package.
package bot

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/immunity-app/immunity/pipeline"
	"github.com/immunity-app/immunity/pipeline/config"
	"github.com/immunity-app/immunity/store"
)

// engine is what the commands need of pipeline.Engine.
type engine interface {
	Config() *config.Config
	Promote(ctx context.Context, a pipeline.Actor, app, region, sha string) (string, error)
	ForcePromote(ctx context.Context, a pipeline.Actor, app, region, sha string) (string, error)
	Freeze(ctx context.Context, a pipeline.Actor, app string, regions []string, until time.Time, reason string) (string, error)
	Unfreeze(ctx context.Context, a pipeline.Actor, app string, regions []string) (string, error)
	Now() time.Time
	Rollback(ctx context.Context, a pipeline.Actor, app, region, toSHA string) (string, error)
	Deploy(ctx context.Context, a pipeline.Actor, app, sha, region string, force bool) (string, error)
	Rerun(ctx context.Context, a pipeline.Actor, runID int64, region string) (string, error)
	Runs(ctx context.Context, app string, activeOnly bool, limit int) ([]store.Run, error)
	Run(ctx context.Context, id int64) (store.Run, error)
	Lock(ctx context.Context, a pipeline.Actor, app, region, reason string) (string, error)
	Unlock(ctx context.Context, a pipeline.Actor, app, region string, force bool) (string, error)
	Status(ctx context.Context, app string) ([]pipeline.AppStatus, error)
	History(ctx context.Context, app, region string, limit int) ([]store.HistoryEntry, error)
	Audit(ctx context.Context, a pipeline.Actor, action, app, region, sha, args, outcome, detail string)
}

var _ engine = (*pipeline.Engine)(nil)

// Request is one command to run.
type Request struct {
	Actor pipeline.Actor
	Text  string // the command as typed: "promote papi prod3", "/promote prod3"
	// App is the app implied by where the command was typed (a GitHub comment on the app's
	// repo); "" for Slack and the CLI, where the command names it.
	App string
	// SHA is the commit the command was typed on (a commit comment's commit, a pull
	// request's head), if any: the release `/promote` approves, the default release of
	// `/deploy to REGION` and the commit a bare `/rollback` takes back.
	SHA string
	// SHASource says where SHA came from, for answers: "this commit", "the head of pull
	// request #5"; "" reads as "commit".
	SHASource string
}

// Reply is the answer to a Request, in plain text with `code` spans (readable as Slack
// mrkdwn, GitHub Markdown and in a terminal).
type Reply struct {
	Text    string
	OK      bool
	Command string // the command's name, "" when it was not understood
	App     string
	Region  string
	// Changed is set when the command changed a region (or tried to): such answers belong
	// in the channel or thread, the rest only to the person who asked.
	Changed bool
}

// Commands runs commands against an engine.
type Commands struct {
	eng     engine
	members Memberships
	table   []*command
}

// New makes the command runner. members answers Slack user group and GitHub team
// questions that access grants ask; nil means no one is in any group.
func New(e engine, members Memberships) *Commands {
	return &Commands{eng: e, members: members, table: commands}
}

// Exec parses, checks and runs one command. It never panics on any input; every answer,
// including refusals, is in the Reply.
func (c *Commands) Exec(ctx context.Context, req Request) Reply {
	if err := pipeline.CheckText("the command", strings.ReplaceAll(req.Text, "\t", " "), MaxCommand); err != nil {
		return Reply{Text: err.Error() + "; nothing was done"}
	}
	p, err := Parse(req.Text, req.App)
	if err != nil {
		var pe *ParseError
		errors.As(err, &pe)
		r := Reply{Text: err.Error(), Command: pe.Command}
		c.refuse(ctx, req, p, &r, "could not parse")
		return r
	}
	if req.App != "" {
		p.App = req.App
	}
	spec, _ := lookupIn(c.table, p.Name)
	r := Reply{Command: p.Name, Changed: spec.action != ""}
	if msg := c.resolve(ctx, req, spec, &p); msg != "" {
		r.Text, r.App, r.Region = msg, p.App, p.Region
		c.refuse(ctx, req, p, &r, msg)
		return r
	}
	r.App, r.Region = p.App, p.Region
	for _, t := range c.targets(spec, p) {
		for _, action := range spec.actions(p) {
			if ok, why := c.allowed(ctx, req.Actor, action, t[0], t[1]); !ok {
				r.Text = why
				c.refuse(ctx, req, p, &r, why)
				return r
			}
		}
	}
	out, err := spec.run(c, ctx, req, &p)
	if err != nil {
		r.Text = err.Error()
		return r
	}
	r.Text, r.OK = out, true
	return r
}

// refuse audits a refused region-changing command.
func (c *Commands) refuse(ctx context.Context, req Request, p Parsed, r *Reply, detail string) {
	spec, ok := lookupIn(c.table, r.Command)
	if !ok || spec.action == "" {
		return
	}
	if p.App == "" {
		p.App = req.App
	}
	c.eng.Audit(ctx, req.Actor, spec.name, p.App, p.Region, p.SHA, clipArgs(req.Text), "refused", detail)
}

// MaxCommand bounds a command line: long enough for any command and a lock reason.
const MaxCommand = 400

// actions are the access actions a parsed command needs.
func (c *command) actions(p Parsed) []string {
	var out []string
	if c.action != "" {
		out = append(out, c.action)
	}
	if c.forceAction != "" && p.Force {
		out = append(out, c.forceAction)
	}
	return out
}

// targets are the app/region pairs a command changes, each checked against the access
// grants: its one region, or for a command with a REGION… list the regions named, every
// region of the app when none is, every region of every app with --all.
func (c *Commands) targets(spec *command, p Parsed) [][2]string {
	if !slices.ContainsFunc(spec.params, func(q param) bool { return q.list }) {
		return [][2]string{{p.App, p.Region}}
	}
	var out [][2]string
	for _, a := range c.eng.Config().Apps {
		if !p.All && a.Name != p.App {
			continue
		}
		for _, r := range a.Regions {
			if p.All || len(p.Regions) == 0 || slices.Contains(p.Regions, r.Name) {
				out = append(out, [2]string{a.Name, r.Name})
			}
		}
	}
	return out
}

func lookupIn(table []*command, name string) (*command, bool) {
	for _, c := range table {
		if c.name == name {
			return c, true
		}
	}
	return nil, false
}

// clipArgs keeps the audited command text to one short line.
func clipArgs(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > 200 {
		return string(r[:200]) + "…"
	}
	return s
}
