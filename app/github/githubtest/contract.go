package githubtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
)

// ContractPaths are the REST paths Immunity calls; the description is cut to them.
var ContractPaths = []string{
	"/app/installations/{installation_id}/access_tokens",
	"/repos/{owner}/{repo}/installation",
	"/repos/{owner}/{repo}/check-runs",
	"/repos/{owner}/{repo}/check-runs/{check_run_id}",
	"/repos/{owner}/{repo}/commits/{ref}/check-runs",
	"/repos/{owner}/{repo}/deployments",
	"/repos/{owner}/{repo}/deployments/{deployment_id}/statuses",
	"/repos/{owner}/{repo}/actions/runs/{run_id}/deployment_protection_rule",
	"/repos/{owner}/{repo}/collaborators/{username}/permission",
	"/repos/{owner}/{repo}/issues/comments/{comment_id}/reactions",
	"/repos/{owner}/{repo}/comments/{comment_id}/reactions",
	"/repos/{owner}/{repo}/issues/{issue_number}/comments",
	"/repos/{owner}/{repo}/commits/{commit_sha}/comments",
	"/repos/{owner}/{repo}/pulls/{pull_number}",
	"/app-manifests/{code}/conversions",
	"/orgs/{org}/installation",
	"/orgs/{org}/teams/{team_slug}/memberships/{username}",
	"/user",
}

// Contract validates requests against GitHub's official REST description (npm
// @octokit/openapi, generated/api.github.com.json), cut to ContractPaths and their
// $refs, with responses left out: we only check what we send.
type Contract struct {
	router routers.Router
}

var (
	contractOnce sync.Once
	contract     *Contract
	contractErr  error
)

// SpecFile is where the description is: $IMMUNITY_TEST_NPM (default
// ~/.cache/immunity-test-npm)/node_modules/@octokit/openapi/generated/api.github.com.json.
func SpecFile() string {
	dir := os.Getenv("IMMUNITY_TEST_NPM")
	if dir == "" {
		home, _ := os.UserHomeDir()
		dir = filepath.Join(home, ".cache", "immunity-test-npm")
	}
	return filepath.Join(dir, "node_modules", "@octokit", "openapi", "generated", "api.github.com.json")
}

// LoadContract loads the description once per test binary. Without it the test fails
// when IMMUNITY_TEST_REQUIRE_ALL=1, and is skipped otherwise.
func LoadContract(t testing.TB) *Contract {
	t.Helper()
	contractOnce.Do(func() { contract, contractErr = loadContract(SpecFile()) })
	needDescription(t, contractErr)
	return contract
}

// needDescription ends the test when the description could not be loaded: skipped when it
// is not installed (unless IMMUNITY_TEST_REQUIRE_ALL=1), failed otherwise.
func needDescription(t testing.TB, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if errors.Is(err, os.ErrNotExist) && os.Getenv("IMMUNITY_TEST_REQUIRE_ALL") != "1" {
		t.Skipf("GitHub OpenAPI description not installed (npm @octokit/openapi): %v", err)
	}
	t.Fatalf("GitHub OpenAPI description: %v", err)
}

func loadContract(file string) (*Contract, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	cut, err := Cut(data, ContractPaths)
	if err != nil {
		return nil, err
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(cut)
	if err != nil {
		return nil, fmt.Errorf("load cut description: %w", err)
	}
	doc.Servers = openapi3.Servers{{URL: "https://api.github.com"}}
	r, err := legacy.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("router: %w", err)
	}
	return &Contract{router: r}, nil
}

// Cut keeps only paths (with every component they reference) of an OpenAPI JSON
// description, replacing each operation's responses by a stub.
func Cut(spec []byte, paths []string) ([]byte, error) {
	var full map[string]any
	if err := json.Unmarshal(spec, &full); err != nil {
		return nil, fmt.Errorf("parse description: %w", err)
	}
	allPaths, _ := full["paths"].(map[string]any)
	comps, _ := full["components"].(map[string]any)
	outPaths := map[string]any{}
	for _, p := range paths {
		item, ok := allPaths[p].(map[string]any)
		if !ok {
			return nil, fmt.Errorf("path %s is not in the description", p)
		}
		for _, op := range item {
			if m, ok := op.(map[string]any); ok {
				if _, has := m["responses"]; has {
					m["responses"] = map[string]any{"default": map[string]any{"description": "not checked"}}
				}
			}
		}
		outPaths[p] = item
	}
	return json.Marshal(map[string]any{"openapi": full["openapi"], "info": full["info"], "servers": full["servers"],
		"paths": outPaths, "components": referenced(outPaths, comps)})
}

// referenced collects every component v refers to, directly or through other components.
func referenced(v any, comps map[string]any) map[string]any {
	outComps := map[string]any{}
	seen := map[string]bool{}
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if ref, ok := x["$ref"].(string); ok && !seen[ref] {
				seen[ref] = true
				parts := strings.Split(strings.TrimPrefix(ref, "#/components/"), "/")
				if len(parts) == 2 {
					kind, _ := comps[parts[0]].(map[string]any)
					if target, ok := kind[parts[1]]; ok {
						dst, _ := outComps[parts[0]].(map[string]any)
						if dst == nil {
							dst = map[string]any{}
							outComps[parts[0]] = dst
						}
						dst[parts[1]] = target
						walk(target)
					}
				}
			}
			for _, c := range x {
				walk(c)
			}
		case []any:
			for _, c := range x {
				walk(c)
			}
		}
	}
	walk(v)
	return outComps
}

var errNoOperation = errors.New("no such operation in GitHub's REST API")

// Validate checks one recorded request against the description.
func (c *Contract) Validate(r Request) error {
	u := "https://api.github.com" + r.Path
	if r.Query != "" {
		u += "?" + r.Query
	}
	req, err := http.NewRequest(r.Method, u, bytes.NewReader(r.Body))
	if err != nil {
		return err
	}
	req.Header = r.Header.Clone()
	route, params, err := c.router.FindRoute(req)
	if err != nil {
		return fmt.Errorf("%s: %w: %w", r.Call(), errNoOperation, err)
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true}}
	if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
		return fmt.Errorf("%s %s: %w", r.Call(), r.Body, err)
	}
	return nil
}

// ValidateAll checks every request the fake received; it fails the test on any violation
// and on an empty recording (a contract test that checked nothing).
func (c *Contract) ValidateAll(t testing.TB, s *Server) {
	t.Helper()
	reqs := s.Requests()
	if len(reqs) == 0 {
		t.Fatal("contract: no request was sent to GitHub")
	}
	for _, r := range reqs {
		if strings.HasPrefix(r.Path, "/login/oauth/") {
			continue // GitHub's web sign-in flow, not its REST API
		}
		if err := c.Validate(r); err != nil {
			t.Errorf("contract violation: %v", err)
		}
	}
}
