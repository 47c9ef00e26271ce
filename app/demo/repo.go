package demo

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/immunity-app/immunity/internal/freeport"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/immunity-app/immunity/fixtures"
	"github.com/immunity-app/immunity/pipeline/judge"
)

// repo is the demo's scratch git repository of papi.
type repo struct {
	dir string
	git *git.Repository
}

// newRepo writes papi's source into a new repository on branch main.
func newRepo(dir string) (*repo, error) {
	r, err := git.PlainInitWithOptions(dir, &git.PlainInitOptions{InitOptions: git.InitOptions{DefaultBranch: plumbing.NewBranchReferenceName("main")}})
	if err != nil {
		return nil, fmt.Errorf("demo repository: %w", err)
	}
	err = fs.WalkDir(fixtures.Papi, "papi", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fixtures.Papi.ReadFile(path)
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, strings.TrimPrefix(path, "papi/"))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		return nil, fmt.Errorf("demo repository: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte(fixtures.PapiGoMod), 0o644); err != nil {
		return nil, err
	}
	os.WriteFile(filepath.Join(dir, ".gitignore"), []byte("bin/\n"), 0o644)
	return &repo{dir: dir, git: r}, nil
}

// commit sets knobs (var NAME = VALUE lines of knobs.go), commits everything and returns the SHA.
func (r *repo) commit(msg string, knobs map[string]string) (string, error) {
	if len(knobs) > 0 {
		path := filepath.Join(r.dir, "knobs.go")
		b, err := os.ReadFile(path)
		if err != nil {
			return "", err
		}
		src := string(b)
		for name, val := range knobs {
			re := regexp.MustCompile(`(?m)^var ` + regexp.QuoteMeta(name) + ` = .*$`)
			if !re.MatchString(src) {
				return "", fmt.Errorf("knobs.go has no knob %s", name)
			}
			src = re.ReplaceAllLiteralString(src, "var "+name+" = "+val)
		}
		if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
			return "", err
		}
	}
	wt, err := r.git.Worktree()
	if err != nil {
		return "", err
	}
	if err := wt.AddWithOptions(&git.AddOptions{All: true}); err != nil {
		return "", err
	}
	h, err := wt.Commit(msg, &git.CommitOptions{Author: &object.Signature{Name: "Ada Lovelace", Email: "ada@example.com", When: time.Now()}})
	if err != nil {
		return "", err
	}
	return h.String(), nil
}

// writeConfig writes the demo's immunity.yml with free ports for the four hosts.
func writeConfig(dir string, monitor time.Duration) (string, error) {
	var ports []int
	for i := 0; i < 4; i++ {
		p, err := freePort()
		if err != nil {
			return "", err
		}
		ports = append(ports, p)
	}
	cfg := fmt.Sprintf(`# The demo's config: papi in four regions on this machine.
server:
  data_dir: data
apps:
  - name: papi
    repo:
      path: papi.git
      branch: main
      poll: 2s   # a commit you make in papi.git starts a run
    build:
      command: [go, build, -o, bin/, ., ./itest]
      artifacts: [bin]
    run:
      command: [bin/papi]
      health: /healthz
    tests:
      command: [bin/itest]
      timeout: 60s
    metrics:   # read from each host's /metrics; judged canary (sandbox2) against baseline (prod3)
      - {name: error_rate, kind: rate, critical: true, allowed_effect: 0.2, scrape: 'http_requests_total{code=~"5.."}', trials_scrape: http_requests_total}
      - {name: latency, kind: latency, allowed_effect: 0.2, unit: s, scrape: http_request_duration_seconds}
      - {name: search_latency, kind: latency, allowed_effect: 0.2, unit: s, scrape: 'http_request_duration_seconds{path="/api/search"}'}
    regions:
      - name: sandbox1
        hosts: [{name: host1, port: %d}]
      - name: sandbox2
        hosts: [{name: host1, port: %d}]
        monitor:
          mirror_from: prod3
          period: %s
          interval: 1s
      - name: prod3
        production: true
        manual_approval: true
        hosts: [{name: host1, port: %d}]
      - name: prod4
        production: true
        hosts: [{name: host1, port: %d}]
`, ports[0], ports[1], monitor, ports[2], ports[3])
	path := filepath.Join(dir, "immunity.yml")
	return path, os.WriteFile(path, []byte(cfg), 0o644)
}

func freePort() (int, error) { return freeport.Get() }

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }

func verdictText(v judge.Verdict) string { return v.Table() }
