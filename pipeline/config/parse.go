package config

import (
	"fmt"
	"maps"
	"net"
	"net/url"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode"

	"gopkg.in/yaml.v3"
)

// Parse parses a config file's bytes; file names it in errors and anchors relative paths.
func Parse(file string, data []byte) (*Config, error) {
	cerr := &ConfigError{File: file}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		cerr.Problems = append(cerr.Problems, yamlProblem(err))
		return nil, cerr
	}
	cfg := &Config{File: file, lines: map[string]int{}}
	if len(root.Content) == 0 {
		cerr.Problems = append(cerr.Problems, Problem{Line: 1, Msg: "empty config: expected a mapping with apps:"})
		return nil, cerr
	}
	doc := root.Content[0]
	checkKeys(doc, reflect.TypeOf(*cfg), "", cfg.lines, &cerr.Problems)
	if len(cerr.Problems) > 0 {
		return nil, cerr
	}
	if err := doc.Decode(cfg); err != nil {
		cerr.Problems = append(cerr.Problems, yamlProblem(err))
		return nil, cerr
	}
	cfg.applyDefaults()
	cerr.Problems = cfg.validate()
	if len(cerr.Problems) > 0 {
		return nil, cerr
	}
	return cfg, nil
}

var yamlLine = regexp.MustCompile(`line (\d+): `)

func yamlProblem(err error) Problem {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = strings.TrimPrefix(msg, "unmarshal errors:\n  ")
	line := 0
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		fmt.Sscan(m[1], &line)
		msg = strings.Replace(msg, m[0], "", 1)
	}
	return Problem{Line: line, Msg: msg}
}

// checkKeys walks the YAML tree alongside the Go type, reporting unknown keys and wrong
// shapes with their line, and recording the line of every path for later messages.
func checkKeys(n *yaml.Node, t reflect.Type, path string, lines map[string]int, probs *[]Problem) {
	lines[path] = n.Line
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	switch t.Kind() {
	case reflect.Struct:
		if t.Name() == "Duration" {
			return
		}
		if n.Kind != yaml.MappingNode {
			*probs = append(*probs, Problem{n.Line, fmt.Sprintf("%s: expected a mapping, got %s", orRoot(path), describe(n))})
			return
		}
		fields := map[string]reflect.StructField{}
		var names []string
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
			if tag == "" || tag == "-" || !f.IsExported() {
				continue
			}
			fields[tag] = f
			names = append(names, tag)
		}
		sort.Strings(names)
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			f, ok := fields[k.Value]
			if !ok {
				msg := fmt.Sprintf("unknown key %q in %s; expected one of: %s", k.Value, orRoot(path), strings.Join(names, ", "))
				if s := closest(k.Value, names); s != "" {
					msg = fmt.Sprintf("unknown key %q in %s (did you mean %q?); expected one of: %s", k.Value, orRoot(path), s, strings.Join(names, ", "))
				}
				*probs = append(*probs, Problem{k.Line, msg})
				continue
			}
			if seen[k.Value] {
				*probs = append(*probs, Problem{k.Line, fmt.Sprintf("key %q given twice in %s", k.Value, orRoot(path))})
			}
			seen[k.Value] = true
			checkKeys(v, f.Type, join(path, k.Value), lines, probs)
		}
	case reflect.Slice:
		if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
			return
		}
		if n.Kind != yaml.SequenceNode {
			*probs = append(*probs, Problem{n.Line, fmt.Sprintf("%s: expected a list, got %s", orRoot(path), describe(n))})
			return
		}
		for i, c := range n.Content {
			checkKeys(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i), lines, probs)
		}
	case reflect.Map:
		if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
			return
		}
		if n.Kind != yaml.MappingNode {
			*probs = append(*probs, Problem{n.Line, fmt.Sprintf("%s: expected a mapping, got %s", orRoot(path), describe(n))})
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			checkKeys(n.Content[i+1], t.Elem(), join(path, n.Content[i].Value), lines, probs)
		}
	default:
		if n.Kind != yaml.ScalarNode {
			*probs = append(*probs, Problem{n.Line, fmt.Sprintf("%s: expected a %s value, got %s", orRoot(path), kindName(t), describe(n))})
		}
	}
}

func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool:
		return "true/false"
	case reflect.Int, reflect.Int64, reflect.Float64:
		return "number"
	}
	return "text"
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return fmt.Sprintf("%q", n.Value)
}

func orRoot(p string) string {
	if p == "" {
		return "the top level"
	}
	return p
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

// closest returns the candidate within edit distance 2 of s, if any.
func closest(s string, cands []string) string {
	best, bestD := "", 3
	for _, c := range cands {
		if d := EditDistance(s, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// EditDistance is the optimal string alignment distance: Levenshtein plus adjacent
// swaps. It answers "did you mean" everywhere (config keys, commands, names).
func EditDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	if len(ra) > 64 || len(rb) > 64 {
		return 1 << 20 // no one mistypes a 64-letter word; keep untrusted input cheap
	}
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}

func (c *Config) applyDefaults() {
	if c.Server.Listen == "" {
		c.Server.Listen = "127.0.0.1:3102"
	}
	dir, err := filepath.Abs(filepath.Dir(c.File))
	if err != nil {
		dir = filepath.Dir(c.File)
	}
	if c.Server.DataDir == "" {
		c.Server.DataDir = "immunity-data"
	}
	if !filepath.IsAbs(c.Server.DataDir) {
		c.Server.DataDir = filepath.Join(dir, c.Server.DataDir)
	}
	if d := c.Server.ArtifactsDir; d != "" && !filepath.IsAbs(d) {
		c.Server.ArtifactsDir = filepath.Join(dir, d)
	}
	if d := c.Server.Database; d != "" && !PostgresURL(d) && !filepath.IsAbs(d) {
		c.Server.Database = filepath.Join(dir, d)
	}
	for i := range c.Apps {
		a := &c.Apps[i]
		if a.Repo.Branch == "" {
			a.Repo.Branch = "main"
		}
		if a.Repo.Path != "" && !filepath.IsAbs(a.Repo.Path) {
			a.Repo.Path = filepath.Join(dir, a.Repo.Path)
		}
		if a.Run.Health == "" {
			a.Run.Health = "/healthz"
		}
		if a.KeepReleases == 0 {
			a.KeepReleases = 5
		}
		for j := range a.Regions {
			r := &a.Regions[j]
			if r.Deployer == "" {
				r.Deployer = "local"
			}
			if r.HostsAtATime == 0 {
				r.HostsAtATime = 1
			}
			r.SSH.applyDefaults(dir)
			for k := range r.Hosts {
				h := &r.Hosts[k]
				if h.URL == "" && h.Port != 0 {
					h.URL = fmt.Sprintf("http://127.0.0.1:%d", h.Port)
				}
			}
		}
	}
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

func (c *Config) validate() []Problem {
	var ps []Problem
	add := func(path, format string, args ...any) {
		line := c.lines[path]
		for p := path; line == 0 && p != ""; {
			i := strings.LastIndexAny(p, ".[")
			if i < 0 {
				p = ""
			} else {
				p = p[:i]
			}
			line = c.lines[p]
		}
		ps = append(ps, Problem{line, fmt.Sprintf(format, args...)})
	}
	if len(c.Apps) == 0 {
		add("apps", "apps: expected at least one app")
	}
	if r := c.Server.Replica; len(r) > 200 || strings.ContainsFunc(r, unicode.IsControl) {
		add("server.replica", "server.replica: expected a name of at most 200 printable characters, got %q", r)
	}
	if l := c.Server.Lease.Duration; l != 0 && l < time.Second {
		add("server.lease", "server.lease: expected at least 1s, got %s", l)
	}
	if l := c.Server.Listen; l != "" {
		if _, port, err := net.SplitHostPort(l); err != nil || port == "" {
			add("server.listen", "server.listen: expected HOST:PORT such as 127.0.0.1:3102 or 0.0.0.0:3102, got %q", l)
		}
	}
	if u := c.Server.URL; u != "" {
		if pu, err := url.Parse(u); err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			add("server.url", "server.url: expected where people reach the dashboard, such as https://immunity.example.com, got %q", u)
		}
	}
	if err := checkSlackChannel(c.Slack.Channel); err != nil {
		add("slack.channel", "slack.channel: %v", err)
	}
	for _, id := range slices.Sorted(maps.Keys(c.Slack.Users)) {
		if !slackUserID.MatchString(id) {
			add("slack.users."+id, "slack.users: expected Slack user ids such as U024BE7LH as keys, got %q", id)
		}
	}
	apps := map[string]bool{}
	ports := map[int]string{}
	gated := map[string]string{} // "repo/environment", lower case -> the app gating it
	for i, a := range c.Apps {
		ap := fmt.Sprintf("apps[%d]", i)
		if !nameRE.MatchString(a.Name) {
			add(ap+".name", "%s.name: expected a lowercase name of letters, digits, - or _, got %q", ap, a.Name)
		}
		if apps[a.Name] {
			add(ap+".name", "app %q is defined twice", a.Name)
		}
		apps[a.Name] = true
		if a.Repo.GitHub == "" && a.Repo.Path == "" {
			add(ap+".repo", "app %s: repo: expected github (owner/name) and/or path (a local git repository)", a.Name)
		}
		if a.Repo.GitHub != "" && strings.Count(a.Repo.GitHub, "/") != 1 {
			add(ap+".repo.github", "app %s: repo.github: expected owner/name, got %q", a.Name, a.Repo.GitHub)
		}
		if len(a.Build.Command) == 0 {
			add(ap+".build", "app %s: build.command: expected an argv list such as [go, build, -o, bin/app, .]", a.Name)
		}
		if len(a.Build.Artifacts) == 0 {
			add(ap+".build", "app %s: build.artifacts: expected the paths to pack into the release", a.Name)
		}
		if !strings.HasPrefix(a.Run.Health, "/") {
			add(ap+".run.health", "app %s: run.health: expected a path starting with /", a.Name)
		}
		if a.KeepReleases < 2 {
			add(ap+".keep_releases", "app %s: keep_releases: expected at least 2 (the live and the previous release)", a.Name)
		}
		if len(a.Regions) == 0 {
			add(ap+".regions", "app %s: regions: expected at least one region", a.Name)
		}
		regions := map[string]int{}
		for j, r := range a.Regions {
			rp := fmt.Sprintf("%s.regions[%d]", ap, j)
			if !nameRE.MatchString(r.Name) {
				add(rp+".name", "%s.name: expected a lowercase name, got %q", rp, r.Name)
			}
			if _, dup := regions[r.Name]; dup {
				add(rp+".name", "app %s: region %q is defined twice", a.Name, r.Name)
			}
			regions[r.Name] = j
			if !slices.Contains([]string{"local", "ssh"}, r.Deployer) {
				add(rp+".deployer", "region %s: deployer: expected local or ssh, got %q", r.Name, r.Deployer)
			}
			if len(r.Hosts) == 0 {
				add(rp+".hosts", "region %s: hosts: expected at least one host", r.Name)
			}
			if r.HostsAtATime < 1 {
				add(rp+".hosts_at_a_time", "region %s: hosts_at_a_time: expected 1 or more", r.Name)
			}
			if r.Deployer == "local" && len(a.Run.Command) == 0 {
				add(ap+".run", "app %s: run.command: expected the argv that starts the app (local deployer)", a.Name)
			}
			hosts := map[string]bool{}
			for k, h := range r.Hosts {
				hp := fmt.Sprintf("%s.hosts[%d]", rp, k)
				if !nameRE.MatchString(h.Name) {
					add(hp+".name", "%s.name: expected a lowercase host name, got %q", hp, h.Name)
				}
				if hosts[h.Name] {
					add(hp+".name", "region %s: host %q is listed twice", r.Name, h.Name)
				}
				hosts[h.Name] = true
				if h.Mirror != "" {
					if u, err := url.Parse(h.Mirror); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
						add(hp+".mirror", "host %s/%s: mirror: expected the sidecar's control URL such as http://10.0.3.11:9101, got %q", r.Name, h.Name, h.Mirror)
					} else if !r.Production {
						add(hp+".mirror", "host %s/%s: mirror: only production hosts have their traffic mirrored", r.Name, h.Name)
					}
				}
				switch r.Deployer {
				case "local":
					if h.Port < 1 || h.Port > 65535 {
						add(hp+".port", "host %s/%s: port: expected a TCP port (1-65535) for the local deployer", r.Name, h.Name)
					} else if other, dup := ports[h.Port]; dup {
						add(hp+".port", "host %s/%s: port %d is already used by %s", r.Name, h.Name, h.Port, other)
					} else {
						ports[h.Port] = a.Name + "/" + r.Name + "/" + h.Name
					}
				case "ssh":
					if h.Address == "" || h.Path == "" {
						add(hp, "host %s/%s: expected address (user@host:port) and path (base folder) for the ssh deployer", r.Name, h.Name)
					}
				}
			}
			for k := range r.Windows {
				wp := fmt.Sprintf("%s.windows[%d]", rp, k)
				for _, prob := range c.Apps[i].Regions[j].Windows[k].compile() {
					field, _, _ := strings.Cut(prob, ":")
					add(wp+"."+field, "region %s: windows[%d].%s", r.Name, k, prob)
				}
			}
			if r.Deployer == "ssh" || r.SSH != nil {
				r.SSH.check(add, rp+".ssh")
			}
			if r.Monitor != nil {
				m := r.Monitor
				if m.MirrorFrom == "" && !r.Production {
					add(rp+".monitor", "region %s: monitor.mirror_from: expected the production region whose traffic is mirrored (only production regions may leave it out: their switched hosts are compared with the ones not yet switched)", r.Name)
				}
				if m.Source != "" && !slices.Contains([]string{"scrape", "prometheus", "mirror"}, m.Source) {
					add(rp+".monitor.source", "region %s: monitor.source: expected scrape, prometheus or mirror, got %q", r.Name, m.Source)
				}
				if m.Source == "prometheus" && m.Prometheus == "" {
					add(rp+".monitor", "region %s: monitor.prometheus: expected the Prometheus base URL", r.Name)
				}
				if m.Calibrate && m.Source == "mirror" {
					add(rp+".monitor.calibrate", "region %s: monitor.calibrate: the mirror source measures only the mirrored canary, not two production hosts against each other; use scrape or prometheus", r.Name)
				}
			}
		}
		for j, r := range a.Regions {
			if r.Monitor == nil || r.Monitor.MirrorFrom == "" {
				continue
			}
			rp := fmt.Sprintf("%s.regions[%d].monitor.mirror_from", ap, j)
			k, ok := regions[r.Monitor.MirrorFrom]
			switch {
			case !ok:
				add(rp, "region %s: monitor.mirror_from: no region %q in app %s; expected one of: %s", r.Name, r.Monitor.MirrorFrom, a.Name, strings.Join(a.RegionNames(), ", "))
			case !a.Regions[k].Production:
				add(rp, "region %s: monitor.mirror_from: region %q is not a production region", r.Name, r.Monitor.MirrorFrom)
			case r.Monitor.MirrorFrom == r.Name:
				add(rp, "region %s: monitor.mirror_from: a region cannot mirror itself", r.Name)
			}
		}
		if a.Access != nil {
			a.Access.check(&c.Apps[i], func(path, format string, args ...any) { add(ap+"."+path, format, args...) })
		}
		if err := checkSlackChannel(a.Slack.Channel); err != nil {
			add(ap+".slack.channel", "app %s: slack.channel: %v", a.Name, err)
		}
		c.checkGates(add, ap, &c.Apps[i])
		for _, env := range a.GateEnvironments() {
			k := strings.ToLower(a.Repo.GitHub + "/" + env)
			if other, dup := gated[k]; dup && other != a.Name && a.Repo.GitHub != "" {
				add(ap+".github_gate."+env, "app %s: github_gate: environment %q of %s is gated by app %s already; one app decides an environment", a.Name, env, a.Repo.GitHub, other)
			}
			gated[k] = a.Name
		}
		metrics := map[string]bool{}
		for j, m := range a.Metrics {
			mp := fmt.Sprintf("%s.metrics[%d]", ap, j)
			m.check(add, mp)
			if metrics[m.Name] {
				add(mp+".name", "app %s: metric %q is defined twice", a.Name, m.Name)
			}
			metrics[m.Name] = true
		}
	}
	return ps
}
