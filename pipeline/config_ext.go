package pipeline

// The config sections below are filled in by the parts that use them (canary metrics,
// SSH, GitHub, Slack, access control). The key check in ParseConfig follows their yaml
// tags, so a new field is accepted (and a typo refused) without touching the parser.
