package config

import (
	"os"
	"path/filepath"
	"strings"
)

// SSHRegion is how the ssh deployer reaches and switches a region's hosts (the `ssh:`
// section of a region whose deployer is ssh).
type SSHRegion struct {
	User       string `yaml:"user"`        // used when a host address has no user@
	KeyFile    string `yaml:"key_file"`    // private key without passphrase (relative to the config file)
	Agent      bool   `yaml:"agent"`       // authenticate with ssh-agent ($SSH_AUTH_SOCK)
	KnownHosts string `yaml:"known_hosts"` // required: every host's key; there is no insecure mode
	// Restart is the argv run on the host in BASE/current after the switch (each word is
	// quoted; nothing is interpreted by a shell), e.g. [sudo, systemctl, restart, papi].
	Restart []string `yaml:"restart"`
	// Health is a URL path fetched on each host's url until it answers 2xx; default the
	// app's run.health when the host has a url.
	Health string `yaml:"health"`
	// HealthCommand is an argv run on the host in BASE/current until it exits 0.
	HealthCommand []string `yaml:"health_command"`
	Timeout       Duration `yaml:"timeout"`       // per host and step (upload; switch+restart+health); default 2m
	Keep          int      `yaml:"keep"`          // releases kept per host; default the app's keep_releases
	Concurrency   int      `yaml:"concurrency"`   // hosts deployed at once outside production; default all
	TestsOnHost   bool     `yaml:"tests_on_host"` // run the region's tests on a host over SSH, in BASE/current
}

// check reports mistakes in a region's ssh section; path is its config path
// ("apps[0].regions[1].ssh"). A nil section is itself a mistake for an ssh region.
func (s *SSHRegion) check(add func(path, format string, args ...any), path string) {
	if s == nil {
		add(path, "%s: expected an ssh section with known_hosts and key_file (or agent: true) for the ssh deployer", path)
		return
	}
	if s.KnownHosts == "" {
		add(path, "%s.known_hosts: expected the known_hosts file holding every host's key (there is no insecure mode)", path)
	}
	if s.KeyFile == "" && !s.Agent {
		add(path, "%s: expected key_file (a private key without passphrase) or agent: true", path)
	}
	if s.Health != "" && !strings.HasPrefix(s.Health, "/") {
		add(path+".health", "%s.health: expected a URL path starting with /, got %q", path, s.Health)
	}
	checkSSHArgv(add, path+".restart", s.Restart)
	checkSSHArgv(add, path+".health_command", s.HealthCommand)
	if s.Keep != 0 && s.Keep < 2 {
		add(path+".keep", "%s.keep: expected at least 2 (the live and the previous release)", path)
	}
	if s.Concurrency < 0 {
		add(path+".concurrency", "%s.concurrency: expected 0 (all hosts at once) or more", path)
	}
}

func checkSSHArgv(add func(path, format string, args ...any), path string, argv []string) {
	if len(argv) > 0 && argv[0] == "" {
		add(path, "%s: expected an argv list whose first word is the program", path)
	}
	for _, a := range argv {
		if strings.ContainsRune(a, 0) {
			add(path, "%s: a word contains a NUL byte", path)
		}
	}
}

// applyDefaults makes key_file and known_hosts absolute: "~/" is the home folder, and a
// relative path is relative to dir, the config file's folder.
func (s *SSHRegion) applyDefaults(dir string) {
	if s == nil {
		return
	}
	s.KeyFile = sshConfigPath(dir, s.KeyFile)
	s.KnownHosts = sshConfigPath(dir, s.KnownHosts)
}

func sshConfigPath(dir, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, rest)
		}
	}
	return filepath.Join(dir, p)
}
