package bot

import (
	"context"
	"strings"

	"github.com/immunity-app/immunity/pipeline/config"
)

// command is one entry of the command table: its syntax, help, who may run it and what
// it does. Parsing, usage lines and help are all derived from this table.
type command struct {
	name     string
	params   []param
	summary  string
	examples []string // as typed in Slack or the CLI; GitHub forms are derived
	repo     []string // extra GitHub comment examples, where the short form differs
	action   string   // the access action checked before running; "" = anyone may run it
	// forceAction is checked as well when the command is given --force.
	forceAction string
	run         func(c *Commands, ctx context.Context, req Request, p *Parsed) (string, error)
}

var (
	pApp      = param{name: "APP"}
	pRegion   = param{name: "REGION"}
	pRegionRO = param{name: "REGION", repoOpt: true}
)

// commands is the command table, in the order help lists it.
var commands = []*command{
	{
		name:        "promote",
		params:      []param{pApp, pRegionRO, {flag: "--release", name: "SHA"}, {flag: "--force"}},
		summary:     "approve the release waiting for REGION (or the one named with --release); outside its deploy windows or before the soak ends it waits; --force (needs the force grant; audited and announced) passes a freeze, the windows and soak",
		examples:    []string{"promote papi prod3", "promote papi prod3 --release 1a2b3c4", "promote papi prod3 --force"},
		repo:        []string{"/promote", "/promote prod3"},
		action:      config.ActionPromote,
		forceAction: config.ActionForce,
		run:         (*Commands).promote,
	},
	{
		name:     "rollback",
		params:   []param{pApp, pRegionRO, {flag: "--to", name: "SHA"}},
		summary:  "put the previous release (or the one named with --to) back on every host of REGION",
		examples: []string{"rollback papi prod3", "rollback papi prod3 --to 0a1b2c3"},
		repo:     []string{"/rollback", "/rollback prod3"},
		action:   config.ActionRollback,
		run:      (*Commands).rollback,
	},
	{
		name:        "deploy",
		params:      []param{pApp, {name: "SHA", repoOpt: true}, {name: "to", literal: true}, pRegion, {flag: "--force"}},
		summary:     "put a known release on REGION; it must have passed every region before REGION and failed none, unless --force (needs the force grant; audited)",
		examples:    []string{"deploy papi 1a2b3c4 to sandbox2", "deploy papi 1a2b3c4 to prod3 --force"},
		repo:        []string{"/deploy to sandbox2"},
		action:      config.ActionDeploy,
		forceAction: config.ActionForce,
		run:         (*Commands).deploy,
	},
	{
		name:     "rerun",
		params:   []param{pApp, pRegionRO, {flag: "--run", name: "N"}},
		summary:  "run REGION's stage of a run again (the newest run that failed there, or --run N); never over a newer release",
		examples: []string{"rerun papi sandbox1", "rerun papi sandbox1 --run 12"},
		action:   config.ActionDeploy,
		run:      (*Commands).rerun,
	},
	{
		name:     "status",
		params:   []param{{name: "APP", optional: true}},
		summary:  "each region's live release, runs in flight, waiting approvals and locks",
		examples: []string{"status", "status papi"},
		run:      (*Commands).status,
	},
	{
		name:     "lock",
		params:   []param{pApp, pRegion, {name: "reason…", rest: true, optional: true}},
		summary:  "freeze REGION: no automatic progress or promotion there until it is unlocked",
		examples: []string{"lock papi prod3 investigating a latency spike"},
		action:   config.ActionLock,
		run:      (*Commands).lock,
	},
	{
		name:     "unlock",
		params:   []param{pApp, pRegion, {flag: "--force"}},
		summary:  "lift a freeze; only the person who locked it, or anyone with --force (audited)",
		examples: []string{"unlock papi prod3", "unlock papi prod3 --force"},
		action:   config.ActionUnlock,
		run:      (*Commands).unlock,
	},
	{
		name: "freeze",
		params: []param{{name: "APP"}, {name: "REGION…", list: true, optional: true}, {name: "until", literal: true}, {name: "TIME"},
			{name: "REASON…", rest: true}, {flag: "--all"}},
		summary: "stop deploys and promotions into APP's REGIONs (every region when none is named; every app with --all) until TIME (2h, 3d, 2026-12-24T18:00Z); rollbacks still go; break-glass: promote or deploy --force",
		examples: []string{"freeze papi prod3 prod4 until 2026-12-27T09:00Z year-end freeze", "freeze papi until 2h incident 42",
			"freeze --all until 3d datacenter move"},
		action: config.ActionLock,
		run:    (*Commands).freeze,
	},
	{
		name:     "unfreeze",
		params:   []param{{name: "APP"}, {name: "REGION…", list: true, optional: true}, {flag: "--all"}},
		summary:  "lift the freezes of APP's REGIONs (all of APP's when none is named; the org-wide ones with --all) before they end",
		examples: []string{"unfreeze papi prod3", "unfreeze papi", "unfreeze --all"},
		action:   config.ActionUnlock,
		run:      (*Commands).unfreeze,
	},
	{
		name:     "history",
		params:   []param{pApp, {name: "REGION", optional: true}},
		summary:  "recent releases of APP and who promoted or rolled back what",
		examples: []string{"history papi", "history papi prod3"},
		run:      (*Commands).history,
	},
	{
		name:     "help",
		params:   []param{{name: "COMMAND", optional: true}},
		summary:  "this list, or one command's usage and examples",
		examples: []string{"help", "help promote"},
		run:      (*Commands).help,
	},
}

func lookup(name string) (*command, bool) {
	for _, c := range commands {
		if c.name == name {
			return c, true
		}
	}
	return nil, false
}

// IsCommand reports whether name is a command of the table ("promote", not "/promote").
func IsCommand(name string) bool {
	_, ok := lookup(name)
	return ok
}

func commandNames() []string {
	out := make([]string, len(commands))
	for i, c := range commands {
		out[i] = c.name
	}
	return out
}

// usage renders a command's syntax; in a repo the APP word is left out.
func usage(c *command, implied bool) string {
	words := []string{c.name}
	if implied {
		words[0] = "/" + c.name
	}
	for _, q := range paramsFor(c, implied) {
		w := q.name
		switch {
		case q.isFlag() && q.name == "":
			w = q.flag
		case q.isFlag():
			w = q.flag + " " + q.name
		}
		if q.optional || q.isFlag() || (implied && q.repoOpt) {
			w = "[" + w + "]"
		}
		words = append(words, w)
	}
	return strings.Join(words, " ")
}
