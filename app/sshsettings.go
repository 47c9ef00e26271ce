package app

import (
	"context"

	"github.com/immunity-app/immunity/deployers"
	sshdeploy "github.com/immunity-app/immunity/deployers/ssh"
	"github.com/immunity-app/immunity/pipeline"
	"github.com/immunity-app/immunity/pipeline/config"
)

// sshSettings turns a region's ssh section of immunity.yml into the ssh deployer's
// Settings. The health check defaults to the app's run.health on each host's url; keep
// defaults to the app's keep_releases.
func sshSettings(app *config.App, r *config.Region) sshdeploy.Settings {
	s := sshdeploy.Settings{Keep: app.KeepReleases, HealthPath: app.Run.Health, HealthTimeout: app.Run.HealthTimeout.Duration}
	c := r.SSH
	if c == nil {
		return s
	}
	s.User, s.KeyFile, s.Agent, s.KnownHosts = c.User, c.KeyFile, c.Agent, c.KnownHosts
	s.Restart = c.Restart
	s.HealthCommand = c.HealthCommand
	switch {
	case c.Health != "":
		s.HealthPath = c.Health
	case len(c.HealthCommand) > 0:
		s.HealthPath = ""
	}
	s.Timeout = c.Timeout.Duration
	if c.Keep != 0 {
		s.Keep = c.Keep
	}
	return s
}

// sshSettingsLookup is the ssh deployer's Options.Settings for a whole config: each host
// gets the settings of its app's region.
func sshSettingsLookup(cfg *config.Config) func(h deployers.Host) sshdeploy.Settings {
	return func(h deployers.Host) sshdeploy.Settings {
		app, ok := cfg.App(h.App)
		if !ok {
			return sshdeploy.Settings{}
		}
		r, _, ok := app.Region(h.Region)
		if !ok {
			return sshdeploy.Settings{}
		}
		return sshSettings(app, r)
	}
}

// testers runs a region's integration tests where its config says: on the host itself,
// over SSH, for regions with ssh.tests_on_host; on this machine otherwise.
type testers struct {
	cfg  *config.Config
	ssh  *sshdeploy.Deployer
	here pipeline.Tester
}

func (t testers) Test(ctx context.Context, rel deployers.Release, h deployers.Host, tests deployers.Tests) (string, error) {
	if a, ok := t.cfg.App(h.App); ok {
		if r, _, ok := a.Region(h.Region); ok && r.Deployer == "ssh" && r.SSH != nil && r.SSH.TestsOnHost {
			return t.ssh.RunTests(ctx, h, rel.SHA, tests)
		}
	}
	return t.here.Test(ctx, rel, h, tests)
}

// PruneTestbeds removes the test beds of releases no host keeps (those unpacked here).
func (t testers) PruneTestbeds(app string, keep map[string]bool) error {
	if p, ok := t.here.(interface {
		PruneTestbeds(string, map[string]bool) error
	}); ok {
		return p.PruneTestbeds(app, keep)
	}
	return nil
}
