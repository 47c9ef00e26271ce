package config

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

const gateApp = `
apps:
  - name: papi
    repo: {github: acme/papi}
    build: {command: [make], artifacts: [bin]}
    run: {command: [bin/papi]}
    regions:
      - {name: sandbox1, hosts: [{name: host1, port: 41001}]}
      - {name: sandbox2, hosts: [{name: host1, port: 41002}], monitor: {mirror_from: prod3}}
      - {name: prod3, production: true, hosts: [{name: host1, port: 41003}]}
    github_gate:
`

func TestGitHubGateParses(t *testing.T) {
	cfg, err := Parse("immunity.yml", []byte(gateApp+`      prod3: {after: [sandbox2], require: [canary_pass, not_locked, in_window]}
      Production: {region: prod3, after: [sandbox1]}
`))
	if err != nil {
		t.Fatal(err)
	}
	a := cfg.Apps[0]
	g, ok := a.Gate("PROD3")
	if !ok || g.Region != "prod3" || !slices.Equal(g.After, []string{"sandbox2"}) || !g.Requires(RequireCanaryPass) || !g.Requires(RequireNotLocked) || !g.Requires(RequireInWindow) {
		t.Fatalf("gate of prod3: %+v %v", g, ok)
	}
	if g, ok := a.Gate("production"); !ok || g.Region != "prod3" || len(g.Require) != 0 {
		t.Fatalf("gate of production: %+v %v", g, ok)
	}
	if _, ok := a.Gate("staging"); ok {
		t.Fatal("an environment without a gate has one")
	}
}

func TestGitHubGateErrorsNameFileLine(t *testing.T) {
	for _, c := range []struct {
		name, gates string
		want        []string
	}{
		{"unknown region and requirement, typo'd key", `      prod3: {after: [sandbox9], require: [canary_passed, not_locked, not_locked], aftr: [x]}
`, []string{`immunity.yml:12: unknown key "aftr" in apps[0].github_gate.prod3 (did you mean "after"?)`}},
		{"bad values, all reported", `      prod3:
        after: [sandbox9]
        require: [canary_passed, not_locked, not_locked]
      production:
        require: [not_locked]
      staging:
        after: [sandbox1]
        require: [canary_pass]
      empty: {}
`, []string{
			`immunity.yml:13: app papi: github_gate.prod3.after: no region "sandbox9"; expected one of: sandbox1, sandbox2, prod3`,
			`immunity.yml:14: app papi: github_gate.prod3.require: unknown requirement "canary_passed"; expected one of: canary_pass, in_window, not_locked`,
			`immunity.yml:14: app papi: github_gate.prod3.require: not_locked is given twice`,
			`immunity.yml:16: app papi: github_gate.production: no region "production", whose lock and deploy window it asks about; set region: to one of: sandbox1, sandbox2, prod3`,
			`immunity.yml:19: app papi: github_gate.staging.require: canary_pass needs a monitored region (one with monitor:) in after`,
			`immunity.yml:20: app papi: github_gate.empty: expected after (regions the release must have passed) and/or require`,
		}},
		{"an environment gated by two apps", `      prod3: {after: [sandbox1]}
  - name: papi2
    repo: {github: Acme/Papi}
    build: {command: [make], artifacts: [bin]}
    run: {command: [bin/papi]}
    regions:
      - {name: prod3, production: true, hosts: [{name: host1, port: 41004}]}
    github_gate:
      PROD3: {after: [prod3]}
`, []string{`immunity.yml:20: app papi2: github_gate: environment "PROD3" of Acme/Papi is gated by app papi already; one app decides an environment`}},
		{"no GitHub repo", `      prod3: {after: [sandbox1]}
`, []string{`immunity.yml:12: app papi: github_gate: needs repo.github`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			yml := gateApp + c.gates
			if c.name == "no GitHub repo" {
				yml = strings.Replace(yml, "{github: acme/papi}", "{path: papi.git}", 1)
			}
			_, err := Parse("immunity.yml", []byte(yml))
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("want a *ConfigError, got %v", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not say %q; it says:\n%s", w, err)
				}
			}
			if len(ce.Problems) != len(c.want) {
				t.Errorf("%d problems, want %d:\n%s", len(ce.Problems), len(c.want), err)
			}
		})
	}
}
