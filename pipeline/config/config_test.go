package config

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

func TestConfigErrorsNameFileLineAndWhatWasExpected(t *testing.T) {
	cases := []struct {
		name, yml string
		want      []string
	}{
		{"typo in a region key", `
apps:
  - name: papi
    repo: {path: papi.git}
    build: {command: [make], artifacts: [bin]}
    run: {command: [bin/papi]}
    regions:
      - name: prod3
        prodution: true
        hosts: [{name: host1, port: 4001}]
`, []string{`immunity.yml:9: unknown key "prodution" in apps[0].regions[0] (did you mean "production"?)`}},
		{"wrong shape", `
apps:
  - name: papi
    repo: {path: papi.git}
    build: {command: make, artifacts: [bin]}
    run: {command: [bin/papi]}
    regions: []
`, []string{`immunity.yml:5: apps[0].build.command: expected a list, got "make"`}},
		{"bad values, all reported", `
apps:
  - name: Papi!
    repo: {}
    build: {command: [make], artifacts: [bin]}
    run: {command: [bin/papi]}
    regions:
      - name: sandbox2
        deployer: docker
        hosts: [{name: host1, port: 4001}]
        monitor: {mirror_from: prod9, period: 5m}
      - name: prod3
        production: true
        hosts: [{name: host1, port: 4002}, {name: host2, port: 4002}]
`, []string{
			`immunity.yml:14: host prod3/host2: port 4002 is already used by Papi!/prod3/host1`,
			`immunity.yml:3: apps[0].name: expected a lowercase name`,
			`immunity.yml:4: app Papi!: repo: expected github (owner/name) and/or path`,
			`immunity.yml:9: region sandbox2: deployer: expected local or ssh, got "docker"`,
			`immunity.yml:11: region sandbox2: monitor.mirror_from: no region "prod9" in app Papi!; expected one of: sandbox2, prod3`,
		}},
		{"bad duration", `
apps:
  - name: papi
    repo: {path: papi.git}
    build: {command: [make], artifacts: [bin], timeout: soon}
    run: {command: [bin/papi]}
    regions:
      - name: s1
        hosts: [{name: host1, port: 4001}]
`, []string{`immunity.yml:5: expected a duration such as 30s or 5m, got "soon"`}},
		{"calibrate where it cannot be measured", `
apps:
  - name: papi
    repo: {path: papi.git}
    build: {command: [make], artifacts: [bin]}
    run: {command: [bin/papi]}
    regions:
      - name: sandbox2
        hosts: [{name: host1, port: 4001}]
        monitor: {mirror_from: prod3, source: mirror, calibrate: true}
      - name: prod3
        production: true
        hosts: [{name: host1, port: 4002}, {name: host2, port: 4003}]
`, []string{
			`immunity.yml:10: region sandbox2: monitor.calibrate: the mirror source measures only the mirrored canary, not two production hosts against each other; use scrape or prometheus`,
		}},
		{"calibrate not a boolean", `
apps:
  - name: papi
    repo: {path: papi.git}
    build: {command: [make], artifacts: [bin]}
    run: {command: [bin/papi]}
    regions:
      - name: prod3
        production: true
        hosts: [{name: host1, port: 4002}, {name: host2, port: 4003}]
        monitor: {calibrate: maybe}
`, []string{"immunity.yml:11: cannot unmarshal !!str `maybe` into bool"}},
		{"not yaml", "apps: [\n", []string{`immunity.yml:1: did not find expected node content`}},
		{"a server address, URL or Slack channel Slack and browsers cannot use", `
server:
  listen: 3102
  url: immunity.example.com
slack:
  channel: deploys channel
  users: {ada: octocat}
apps:
  - name: papi
    repo: {path: papi.git}
    build: {command: [make], artifacts: [bin]}
    run: {command: [bin/papi]}
    slack: {channel: "#deploys, #ops"}
    regions:
      - name: prod3
        production: true
        hosts: [{name: host1, port: 4002}]
`, []string{
			`immunity.yml:3: server.listen: expected HOST:PORT such as 127.0.0.1:3102 or 0.0.0.0:3102, got "3102"`,
			`immunity.yml:4: server.url: expected where people reach the dashboard, such as https://immunity.example.com, got "immunity.example.com"`,
			`immunity.yml:6: slack.channel: expected a channel id such as C024BE91L or a name such as #deploys (letters, digits, - and _, at most 80), got "deploys channel"`,
			`immunity.yml:7: slack.users: expected Slack user ids such as U024BE7LH as keys, got "ada"`,
			`immunity.yml:13: app papi: slack.channel: expected a channel id such as C024BE91L or a name such as #deploys`,
		}},
		{"grants naming no one a surface verifies", `
apps:
  - name: papi
    repo: {path: papi.git}
    build: {command: [make], artifacts: [bin]}
    run: {command: [bin/papi]}
    regions:
      - name: prod3
        production: true
        hosts: [{name: host1, port: 4002}]
    access:
      production:
        - {actions: [promote], github_users: [ada, 4242, old--login-, ada_acme]}
        - actions: [rollback]
          github_users: ["@ada"]
          slack_users: [ada]
          slack_groups: [papi-devs]
          tokens: [Release Bot]
`, []string{
			`immunity.yml:15: app papi: access.production[1].github_users: expected a GitHub login (without @) or a numeric user id, got "@ada"`,
			`immunity.yml:16: app papi: access.production[1].slack_users: expected a Slack user id such as U024BE7LH (a name is not matched: names change), got "ada"`,
			`immunity.yml:17: app papi: access.production[1].slack_groups: expected a Slack user group id such as S0PAPIDEV, got "papi-devs"`,
			`immunity.yml:18: app papi: access.production[1].tokens: expected a token's name (1-64 lower-case letters, digits, '.', '_' or '-'), got "Release Bot"`,
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("immunity.yml", []byte(c.yml))
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("want a *ConfigError, got %v", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not say %q; it says:\n%s", w, err)
				}
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	cfg, err := Parse("/etc/immunity/immunity.yml", []byte(twoRegions))
	if err != nil {
		t.Fatal(err)
	}
	a := cfg.Apps[0]
	if a.Repo.Path != "/etc/immunity/papi.git" || a.Repo.Branch != "main" || a.KeepReleases != 5 || a.Run.Health != "/healthz" {
		t.Fatalf("app defaults: %+v", a)
	}
	r, _, _ := a.Region("prod3")
	if r.Deployer != "local" || r.HostsAtATime != 1 || r.Hosts[0].URL != "http://127.0.0.1:41003" {
		t.Fatalf("region defaults: %+v", r)
	}
	if cfg.Server.Listen != "127.0.0.1:3102" || cfg.Server.DataDir != "/etc/immunity/immunity-data" ||
		cfg.Server.DatabaseSetting() != "/etc/immunity/immunity-data/immunity.db" || cfg.Server.ArtifactsDir != "" {
		t.Fatalf("server defaults: %+v", cfg.Server)
	}
	cfg, err = Parse("/etc/immunity/immunity.yml", []byte("server: {artifacts_dir: shared/artifacts}\n"+twoRegions))
	if err != nil || cfg.Server.ArtifactsDir != "/etc/immunity/shared/artifacts" {
		t.Fatalf("artifacts_dir relative to the file: %q %v", cfg.Server.ArtifactsDir, err)
	}
}

func TestDatabaseSetting(t *testing.T) {
	for body, want := range map[string]string{
		"server: {database: state/immunity.db}":                      "/etc/immunity/state/immunity.db",
		"server: {database: 'postgres://immunity@db:5432/immunity'}": "postgres://immunity@db:5432/immunity",
	} {
		cfg, err := Parse("/etc/immunity/immunity.yml", []byte(body+"\n"+twoRegions))
		if err != nil {
			t.Fatal(err)
		}
		if got := cfg.Server.DatabaseSetting(); got != want {
			t.Errorf("%s: database = %q, want %q", body, got, want)
		}
	}
}

func TestReplicaName(t *testing.T) {
	cfg, err := Parse("/etc/immunity/immunity.yml", []byte("server: {replica: deploy-b, listen: '127.0.0.1:4000'}\n"+twoRegions))
	if err != nil || cfg.Server.ReplicaName() != "deploy-b" {
		t.Fatalf("replica: %v %v", cfg.Server.ReplicaName(), err)
	}
	cfg, _ = Parse("/etc/immunity/immunity.yml", []byte("server: {listen: '127.0.0.1:4000'}\n"+twoRegions))
	if host, _ := os.Hostname(); cfg.Server.ReplicaName() != host+" 127.0.0.1:4000" {
		t.Fatalf("default replica name %q", cfg.Server.ReplicaName())
	}
	if _, err := Parse("/etc/immunity/immunity.yml", []byte("server: {replica: \"a\\tb\"}\n"+twoRegions)); err == nil || !strings.Contains(err.Error(), "server.replica") {
		t.Fatalf("a replica name with a tab: %v", err)
	}
}

func TestLeaseSetting(t *testing.T) {
	cfg, err := Parse("/etc/immunity/immunity.yml", []byte("server: {lease: 4s}\n"+twoRegions))
	if err != nil || cfg.Server.Lease.Duration != 4*time.Second {
		t.Fatalf("lease: %v %v", cfg.Server.Lease, err)
	}
	if _, err := Parse("/etc/immunity/immunity.yml", []byte("server: {lease: 200ms}\n"+twoRegions)); err == nil || !strings.Contains(err.Error(), "server.lease: expected at least 1s, got 200ms") {
		t.Fatalf("a lease of 200ms: %v", err)
	}
}

// twoRegions is a config with a sandbox and a production region, defaults left out.
const twoRegions = `
apps:
  - name: papi
    repo: {path: papi.git}
    build: {command: [make], artifacts: [bin]}
    run: {command: [bin/papi]}
    regions:
      - name: sandbox1
        hosts: [{name: host1, port: 41001}]
      - name: prod3
        production: true
        hosts: [{name: host1, port: 41003}]
`
