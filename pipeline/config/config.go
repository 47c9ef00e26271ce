// Package config is the model of immunity.yml: the server's settings, and per app its
// repository, build, run and test commands, metrics, access rules and ordered regions of
// hosts. Load and Parse read a file and report every problem at once as FILE:LINE: what
// was expected; unknown keys are refused by walking the YAML beside the Go types, so a new
// field is accepted (and a typo refused) by adding it to a struct with its yaml tag.
//
// Secrets (GitHub App key and webhook secret, Slack token and signing secret) are named
// here by value or by file and read only when asked for (Secret, Key, Token); they are
// never logged. The package is a leaf: it imports nothing of the module but the judge's
// metric types.
package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the whole of immunity.yml: the server's settings and the apps it deploys.
type Config struct {
	File   string       `yaml:"-"`
	Server ServerConfig `yaml:"server"`
	GitHub GitHubConfig `yaml:"github"`
	Slack  SlackConfig  `yaml:"slack"`
	Apps   []App        `yaml:"apps"`

	lines map[string]int // config path ("apps[0].regions[1]") -> line, for errors
}

// ServerConfig is how the Immunity server runs.
type ServerConfig struct {
	Listen  string `yaml:"listen"`   // default 127.0.0.1:3102 (IMMUNITY_LISTEN wins)
	DataDir string `yaml:"data_dir"` // SQLite file, releases, host folders; default ./immunity-data
	// Database is where the store lives: a SQLite file (default DATA_DIR/immunity.db) or a
	// PostgreSQL URL, postgres://user@host:5432/immunity, which several replicas of the
	// server can share. IMMUNITY_DATABASE_URL wins.
	Database string `yaml:"database"`
	// Replica names this server among the replicas sharing a database, as the holder of
	// leases (default: host name and listen address). A replica restarted under its name
	// takes its own leases back at once. IMMUNITY_REPLICA wins.
	Replica string `yaml:"replica"`
	// Lease is how long a lease on work that must happen once (an app's runs, the Slack and
	// GitHub outboxes) lasts without renewal: a replica that dies holding one is taken over
	// within two of these. Default 15s; at least 1s.
	Lease Duration `yaml:"lease"`
	// ArtifactsDir is a folder every replica sharing the database reaches (a shared
	// file system) where release artifacts are kept. Without it, artifacts are files in
	// DATA_DIR/artifacts on SQLite and stored in the database on PostgreSQL (each replica
	// keeping a verified copy in its DATA_DIR).
	ArtifactsDir string `yaml:"artifacts_dir"`
	// URL is where people reach the dashboard; links in GitHub and Slack point there.
	URL string `yaml:"url"`
}

// App is one deployable service, bound to one repo.
type App struct {
	Name         string   `yaml:"name"`
	Repo         Repo     `yaml:"repo"`
	Build        Build    `yaml:"build"`
	Run          Run      `yaml:"run"`
	Tests        Tests    `yaml:"tests"`
	Metrics      []Metric `yaml:"metrics"`
	KeepReleases int      `yaml:"keep_releases"` // per host, default 5
	Regions      []Region `yaml:"regions"`
	Slack        AppSlack `yaml:"slack"`
	Access       *Access  `yaml:"access"`
	// GitHubGate makes Immunity the custom deployment protection rule of GitHub Actions
	// environments of the app's repo, by environment name (gate.go).
	GitHubGate map[string]GitHubGate `yaml:"github_gate"`
}

// Repo says where an app's code lives: a GitHub repo, a local git repository, or both.
type Repo struct {
	GitHub string `yaml:"github"` // owner/name
	Path   string `yaml:"path"`   // local git repository (relative to the config file)
	Branch string `yaml:"branch"` // the branch whose pushes start runs; default main
	// Poll makes the server look at the local repository's branch this often and start a
	// run when its head moves (for apps not on GitHub); 0 turns polling off.
	Poll Duration `yaml:"poll"`
}

// Build turns a checkout into a release. Command is an argv list run in the checkout.
type Build struct {
	Command   []string          `yaml:"command"`
	Artifacts []string          `yaml:"artifacts"` // paths (relative to the checkout) packed into the release
	Env       map[string]string `yaml:"env"`
	Timeout   Duration          `yaml:"timeout"` // default 5m
}

// Run is how a host starts the app from its `current` release (local deployer; the ssh
// deployer uses the region's restart command).
type Run struct {
	Command      []string          `yaml:"command"` // argv, relative to the release folder; $PORT in env
	Env          map[string]string `yaml:"env"`
	Health       string            `yaml:"health"`        // path of the health check (any 2xx is healthy), default /healthz
	StartTimeout Duration          `yaml:"start_timeout"` // default 20s
	// HealthTimeout bounds one health request, on every deployer; default 5s.
	HealthTimeout Duration `yaml:"health_timeout"`
}

// Tests are the integration tests run against a region: an argv run in the release
// folder with IMMUNITY_BASE_URL (and IMMUNITY_REGION, IMMUNITY_HOST) in its environment.
type Tests struct {
	Command []string          `yaml:"command"`
	Env     map[string]string `yaml:"env"`
	Timeout Duration          `yaml:"timeout"` // default 2m
}

// Region is an ordered group of hosts.
type Region struct {
	Name           string         `yaml:"name"`
	Deployer       string         `yaml:"deployer"` // local (default) or ssh
	Hosts          []Host         `yaml:"hosts"`
	Production     bool           `yaml:"production"`
	ManualApproval bool           `yaml:"manual_approval"` // a person promotes the release into this region
	HostsAtATime   int            `yaml:"hosts_at_a_time"` // production rollout batch; default 1
	Monitor        *MonitorConfig `yaml:"monitor"`
	SkipTests      bool           `yaml:"skip_tests"`
	SSH            *SSHRegion     `yaml:"ssh"`
	// Windows, when given, are the only times automatic progress and promotions start
	// here; rollbacks are never held.
	Windows []Window `yaml:"windows"`
	// Soak is how long a release must have been live here before it is promoted past
	// this region (a newer release arriving does not restart an older one's soak).
	Soak Duration `yaml:"soak"`
}

// Host is one server of a region.
type Host struct {
	Name    string `yaml:"name"`
	Port    int    `yaml:"port"`    // local deployer: where the app listens
	Address string `yaml:"address"` // ssh deployer: user@host:port
	Path    string `yaml:"path"`    // ssh deployer: base folder on the host
	URL     string `yaml:"url"`     // where the app answers; default http://127.0.0.1:PORT
	// Mirror is the control URL of the traffic mirror sidecar in front of a production host
	// (`immunity mirror --control ...`), e.g. http://10.0.3.11:9101; local hosts get an
	// in-process mirror instead.
	Mirror string `yaml:"mirror"`
}

// MonitorConfig makes a region a canary: it receives mirrored read-only traffic from a
// production region for Period, and its metrics are judged against that region's.
type MonitorConfig struct {
	MirrorFrom string   `yaml:"mirror_from"`
	Period     Duration `yaml:"period"`     // default 5m
	Interval   Duration `yaml:"interval"`   // how often metrics are taken and judged; default 10s
	Source     string   `yaml:"source"`     // scrape (default), prometheus, mirror
	Prometheus string   `yaml:"prometheus"` // Prometheus base URL for source: prometheus
	// Calibrate records an A/A window beside each monitoring window: two hosts of the
	// baseline (production, on the same release) measured against each other, judged
	// by nothing, written under data_dir/calibration/APP/REGION for `immunity judge
	// calibrate --recorded`.
	Calibrate bool `yaml:"calibrate"`
}

// AppSlack is where an app's runs are posted.
type AppSlack struct {
	Channel string `yaml:"channel"`
}

// Duration is a time.Duration written as "5m", "30s".
type Duration struct{ time.Duration }

// UnmarshalYAML reads "90s", "5m".
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil || v < 0 {
		return fmt.Errorf("line %d: expected a duration such as 30s or 5m, got %q", n.Line, n.Value)
	}
	d.Duration = v
	return nil
}

// MarshalYAML writes the duration back as text.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// Or returns d, or def when d is zero.
func (d Duration) Or(def time.Duration) time.Duration {
	if d.Duration == 0 {
		return def
	}
	return d.Duration
}

// App returns the app named name.
func (c *Config) App(name string) (*App, bool) {
	for i := range c.Apps {
		if c.Apps[i].Name == name {
			return &c.Apps[i], true
		}
	}
	return nil, false
}

// Region returns the region named name.
func (a *App) Region(name string) (*Region, int, bool) {
	for i := range a.Regions {
		if a.Regions[i].Name == name {
			return &a.Regions[i], i, true
		}
	}
	return nil, -1, false
}

// RegionNames lists the app's regions in order.
func (a *App) RegionNames() []string {
	var out []string
	for _, r := range a.Regions {
		out = append(out, r.Name)
	}
	return out
}

// Load reads and checks a config file. Every problem is reported as
// "FILE:LINE: what was expected", all of them at once.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, data)
}

// ConfigError lists every problem found in a config file.
type ConfigError struct {
	File     string
	Problems []Problem
}

// Problem is one mistake in a config file.
type Problem struct {
	Line int
	Msg  string
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "%s:%d: %s", e.File, p.Line, p.Msg)
	}
	return b.String()
}

// DatabaseSetting is the database the server opens: Database, or the SQLite file in DataDir.
func (s ServerConfig) DatabaseSetting() string {
	if s.Database != "" {
		return s.Database
	}
	return filepath.Join(s.DataDir, "immunity.db")
}

// ReplicaName is Replica, or the host name and listen address.
func (s ServerConfig) ReplicaName() string {
	if s.Replica != "" {
		return s.Replica
	}
	host, _ := os.Hostname()
	return host + " " + s.Listen
}

// PostgresURL reports whether a database setting names a PostgreSQL server.
func PostgresURL(database string) bool {
	return strings.HasPrefix(database, "postgres://") || strings.HasPrefix(database, "postgresql://")
}

// Empty is the config of a server started without a file: no apps yet.
func Empty() *Config {
	c := &Config{File: "(environment)", lines: map[string]int{}}
	c.applyDefaults()
	return c
}
