package main

import (
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// The import rules of ARCHITECTURE.md, checked on what `go list` says the product's
// packages import (tests left out: they may reach further). A rule names a package
// pattern ("deployers/..." is the package and everything below it) and what of the module
// it may import; third-party packages a package must never depend on, even indirectly,
// are listed apart.
type importRule struct {
	pkg     string
	mayUse  []string // module packages it may import; nil means none
	why     string
	anyOfIt bool // app/...: the wiring may import anything
}

var importRules = []importRule{
	{pkg: "store", why: "the store is a leaf: SQL and the states it keeps"},
	{pkg: "internal/...", mayUse: []string{"internal/freeport"}, why: "internal helpers are leaves (test servers take their ports from internal/freeport)"},
	{pkg: "pipeline/judge", why: "the judge is pure statistics"},
	{pkg: "pipeline/config", mayUse: []string{"pipeline/judge"}, why: "config is a leaf but for the judge's metric types"},
	{pkg: "deployers/...", mayUse: []string{"deployers/...", "internal/wait", "internal/freeport"}, why: "a deployer knows only deployers"},
	{pkg: "pipeline/release", mayUse: []string{"deployers", "internal/proc"}, why: "the release builder makes deployers.Release, running its commands through internal/proc"},
	{pkg: "pipeline", mayUse: []string{"deployers", "store", "pipeline/config", "pipeline/judge", "internal/..."}, why: "the engine knows no surface"},
	{pkg: "canary/...", mayUse: []string{"canary/...", "deployers", "pipeline", "pipeline/config", "pipeline/judge", "internal/..."}, why: "metric sources and the mirror know no surface"},
	{pkg: "checks", mayUse: []string{"pipeline", "pipeline/config", "pipeline/judge", "store", "internal/..."}, why: "the GitHub reporter is a listener"},
	{pkg: "bot", mayUse: []string{"pipeline", "pipeline/config", "pipeline/judge", "store", "internal/..."}, why: "the command layer drives the engine"},
	{pkg: "bot/slackbot", mayUse: []string{"bot", "canary/chart", "pipeline", "pipeline/config", "pipeline/judge", "store", "internal/..."}, why: "Slack is a surface of the command layer"},
	{pkg: "app/...", anyOfIt: true, why: "app/ wires the parts together"},
}

// engineMustNotUse are the outside libraries the engine never depends on, even through
// another package: the engine tells the world through its Listener.
var engineMustNotUse = []string{
	"github.com/google/go-github",
	"github.com/bradleyfalzon/ghinstallation",
	"github.com/slack-go/slack",
	"golang.org/x/crypto/ssh",
	"github.com/gin-gonic/gin",
}

const module = "github.com/immunity-app/immunity"

type listedPackage struct {
	ImportPath string
	Imports    []string
	Deps       []string
}

func listPackages(t *testing.T) []listedPackage {
	t.Helper()
	out, err := exec.Command("go", "list", "-json", "./...").Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	var pkgs []listedPackage
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p listedPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 10 {
		t.Fatalf("go list found only %d packages", len(pkgs))
	}
	return pkgs
}

// matches reports whether a module-relative path fits a pattern ("a/..." or "a").
func matches(rel, pattern string) bool {
	if base, ok := strings.CutSuffix(pattern, "/..."); ok {
		return rel == base || strings.HasPrefix(rel, base+"/")
	}
	return rel == pattern
}

func relative(path string) (string, bool) {
	if path == module {
		return "", true
	}
	return strings.CutPrefix(path, module+"/")
}

// violations lists what breaks the rules: "pkg imports x: why".
func violations(pkgs []listedPackage) []string {
	var out []string
	for _, p := range pkgs {
		rel, ok := relative(p.ImportPath)
		if !ok {
			continue
		}
		// The most specific rule wins: pipeline/config before pipeline.
		var rule *importRule
		for i := range importRules {
			if r := &importRules[i]; matches(rel, r.pkg) && (rule == nil || len(r.pkg) > len(rule.pkg)) {
				rule = r
			}
		}
		for _, imp := range p.Imports {
			irel, ok := relative(imp)
			if !ok {
				continue
			}
			switch {
			case irel == "app" || strings.HasPrefix(irel, "app/"):
				if rel != "" && !matches(rel, "app/...") && !strings.HasPrefix(rel, "bench/") {
					out = append(out, rel+" imports "+irel+": only main and app/ may import the wiring")
				}
			case rule == nil || rule.anyOfIt:
			case !slices.ContainsFunc(rule.mayUse, func(pat string) bool { return matches(irel, pat) }):
				out = append(out, rel+" imports "+irel+": "+rule.why)
			}
		}
		if rel == "pipeline" {
			for _, d := range p.Deps {
				for _, bad := range engineMustNotUse {
					if strings.HasPrefix(d, bad) {
						out = append(out, rel+" depends on "+d+": the engine knows no GitHub, Slack, SSH or HTTP-server code")
					}
				}
			}
		}
	}
	return out
}

func TestImportRules(t *testing.T) {
	if v := violations(listPackages(t)); len(v) > 0 {
		t.Errorf("import rules of ARCHITECTURE.md broken:\n  %s", strings.Join(v, "\n  "))
	}
}

// TestImportRulesCatchAViolation makes sure the check itself can fail: a store that
// imported the engine, or an engine that reached Slack, is reported.
func TestImportRulesCatchAViolation(t *testing.T) {
	bad := []listedPackage{
		{ImportPath: module + "/store", Imports: []string{module + "/pipeline"}},
		{ImportPath: module + "/deployers/ssh", Imports: []string{module + "/pipeline/config"}},
		{ImportPath: module + "/pipeline", Deps: []string{"github.com/slack-go/slack"}},
		{ImportPath: module + "/bot", Imports: []string{module + "/app"}},
		{ImportPath: module + "/pipeline/config", Imports: []string{module + "/pipeline/judge"}}, // allowed
	}
	got := violations(bad)
	if len(got) != 4 {
		t.Fatalf("violations = %q, want 4 (store, deployers/ssh, pipeline, bot)", got)
	}
}
