package pipeline

// The config sections below are filled in by the parts that use them (canary metrics,
// SSH, GitHub, Slack, access control). The key check in ParseConfig follows their yaml
// tags, so a new field is accepted (and a typo refused) without touching the parser.

// Metric is one application metric the judge compares between canary and baseline.
type Metric struct {
	Name string `yaml:"name"`
}

// SSHRegion is how the ssh deployer reaches a region's hosts.
type SSHRegion struct{}

// GitHubConfig is the GitHub App's settings; the IMMUNITY_GITHUB_* environment wins.
type GitHubConfig struct{}

// SlackConfig is the Slack bot's settings; the IMMUNITY_SLACK_* environment wins.
type SlackConfig struct{}

// Access says who may do what to an app.
type Access struct{}
