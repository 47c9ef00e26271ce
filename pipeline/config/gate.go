package config

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// GitHubGate is what Immunity requires before it approves a GitHub Actions job's deploy to
// one environment of the app's repo (Immunity as the environment's custom deployment
// protection rule): the commit's release passed the regions After in Immunity, and every
// requirement of Require holds.
type GitHubGate struct {
	// Region is the Immunity region whose lock (and deploy window) not_locked and
	// in_window ask about; default the environment's name.
	Region  string   `yaml:"region"`
	After   []string `yaml:"after"`
	Require []string `yaml:"require"`
}

// Gate requirements.
const (
	RequireCanaryPass = "canary_pass" // every monitored region of After judged the release Pass
	RequireNotLocked  = "not_locked"  // Region is not locked
	RequireInWindow   = "in_window"   // Region is inside a deploy window
)

var gateRequirements = []string{RequireCanaryPass, RequireInWindow, RequireNotLocked}

// Requires says whether the gate requires r.
func (g GitHubGate) Requires(r string) bool { return slices.Contains(g.Require, r) }

// Gate returns the gate of a GitHub environment (matched without regard to case, as
// GitHub names environments) and its region with defaults applied.
func (a *App) Gate(environment string) (GitHubGate, bool) {
	for env, g := range a.GitHubGate {
		if strings.EqualFold(env, environment) {
			if g.Region == "" {
				g.Region = env
			}
			return g, true
		}
	}
	return GitHubGate{}, false
}

// GateEnvironments lists the environments the app gates, sorted.
func (a *App) GateEnvironments() []string {
	out := make([]string, 0, len(a.GitHubGate))
	for env := range a.GitHubGate {
		out = append(out, env)
	}
	sort.Strings(out)
	return out
}

// checkGates reports every problem of an app's github_gate.
func (c *Config) checkGates(add func(path, format string, args ...any), ap string, a *App) {
	if len(a.GitHubGate) > 0 && a.Repo.GitHub == "" {
		add(ap+".github_gate", "app %s: github_gate: needs repo.github (the repo whose environments Immunity gates)", a.Name)
	}
	seen := map[string]string{}
	for _, env := range a.GateEnvironments() {
		g := a.GitHubGate[env]
		gp := ap + ".github_gate." + env
		if strings.TrimSpace(env) == "" || len(env) > 255 {
			add(gp, "app %s: github_gate: expected a GitHub environment name of 1 to 255 characters, got %q", a.Name, env)
		}
		if other, dup := seen[strings.ToLower(env)]; dup {
			add(gp, "app %s: github_gate: environment %q is given twice (%q; GitHub's environment names ignore case)", a.Name, env, other)
		}
		seen[strings.ToLower(env)] = env
		if len(g.After) == 0 && len(g.Require) == 0 {
			add(gp, "app %s: github_gate.%s: expected after (regions the release must have passed) and/or require (%s)", a.Name, env, strings.Join(gateRequirements, ", "))
		}
		monitored := false
		for k, r := range g.After {
			region, _, ok := a.Region(r)
			if !ok {
				add(fmt.Sprintf("%s.after[%d]", gp, k), "app %s: github_gate.%s.after: no region %q; expected one of: %s", a.Name, env, r, strings.Join(a.RegionNames(), ", "))
				continue
			}
			monitored = monitored || region.Monitor != nil
		}
		for k, r := range g.Require {
			rp := fmt.Sprintf("%s.require[%d]", gp, k)
			switch {
			case !slices.Contains(gateRequirements, r):
				add(rp, "app %s: github_gate.%s.require: unknown requirement %q; expected one of: %s", a.Name, env, r, strings.Join(gateRequirements, ", "))
			case slices.Index(g.Require, r) != k:
				add(rp, "app %s: github_gate.%s.require: %s is given twice", a.Name, env, r)
			case r == RequireCanaryPass && !monitored:
				add(rp, "app %s: github_gate.%s.require: canary_pass needs a monitored region (one with monitor:) in after", a.Name, env)
			}
		}
		region := g.Region
		if region == "" {
			region = env
		}
		if g.Requires(RequireNotLocked) || g.Requires(RequireInWindow) || g.Region != "" {
			if _, _, ok := a.Region(region); !ok {
				path := gp + ".region"
				if g.Region == "" {
					path = gp
				}
				add(path, "app %s: github_gate.%s: no region %q, whose lock and deploy window it asks about; set region: to one of: %s", a.Name, env, region, strings.Join(a.RegionNames(), ", "))
			}
		}
	}
}
