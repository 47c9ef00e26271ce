package ssh

import (
	"github.com/immunity-app/immunity/deployers"
	"github.com/immunity-app/immunity/pipeline/config"
)

// SettingsFor turns a region's ssh section of immunity.yml into the deployer's Settings.
// The health check defaults to the app's run.health on each host's url; keep defaults to
// the app's keep_releases.
func SettingsFor(app *config.App, r *config.Region) Settings {
	s := Settings{Keep: app.KeepReleases, HealthPath: app.Run.Health}
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

// ConfigSettings returns the Settings lookup for Options.Settings from a whole config:
// each host gets the settings of its app's region.
func ConfigSettings(cfg *config.Config) func(h deployers.Host) Settings {
	return func(h deployers.Host) Settings {
		app, ok := cfg.App(h.App)
		if !ok {
			return Settings{}
		}
		r, _, ok := app.Region(h.Region)
		if !ok {
			return Settings{}
		}
		return SettingsFor(app, r)
	}
}
