package github

import (
	"fmt"
	"testing"

	"github.com/immunity-app/immunity/app/github/githubtest"
	"github.com/immunity-app/immunity/pipeline/config"
	"github.com/immunity-app/immunity/store"
)

const gateSHA = "6113728f27ae82c7b1a177c8d03f9e96e0adf246"

// gateRequest is a deployment_protection_rule delivery made from GitHub's published
// schema of it, for workflow run runID of Codertocat/Hello-World.
func gateRequest(t testing.TB, env string, runID, deployment int64, edits map[string]any) []byte {
	t.Helper()
	set := map[string]any{
		"environment":             env,
		"event":                   "push",
		"sha":                     gateSHA,
		"ref":                     "refs/heads/master",
		"deployment_callback_url": fmt.Sprintf("https://api.github.com/repos/Codertocat/Hello-World/actions/runs/%d/deployment_protection_rule", runID),
		"deployment.id":           deployment,
		"deployment.sha":          gateSHA,
		"deployment.environment":  env,
		"repository.full_name":    "Codertocat/Hello-World",
		"repository.name":         "Hello-World",
		"repository.owner.login":  "Codertocat",
		"installation.id":         42,
	}
	for k, v := range edits {
		set[k] = v
	}
	return githubtest.Webhook(t, "deployment-protection-rule-requested", set)
}

func gateConfig() *config.Config {
	cfg := testConfig()
	cfg.Apps[0].GitHubGate = map[string]config.GitHubGate{"prod3": {After: []string{"sandbox1"}, Require: []string{config.RequireNotLocked}}}
	return cfg
}

// TestGateRequestIsStoredBeforeTheAnswer: a deployment_protection_rule delivery is in the
// store when it is answered, bound to the app that gates its environment (none for an
// environment no app gates); its redelivery records nothing twice; one that names another
// repository's run, no workflow run or no commit is refused 400 and stores nothing.
func TestGateRequestIsStoredBeforeTheAnswer(t *testing.T) {
	h := newHarness(t)
	h.eng.cfg = gateConfig()
	woken := 0
	h.app.gateWake = func() { woken++ }
	if code := h.post(t, "deployment_protection_rule", "g1", gateRequest(t, "prod3", 4242, 77, nil), ""); code != 202 {
		t.Fatalf("delivery: %d", code)
	}
	if code := h.post(t, "deployment_protection_rule", "g1", gateRequest(t, "prod3", 4242, 77, nil), ""); code != 200 {
		t.Fatalf("redelivery: %d", code)
	}
	if code := h.post(t, "deployment_protection_rule", "g2", gateRequest(t, "staging", 4242, 78, nil), ""); code != 202 {
		t.Fatalf("another environment: %d", code)
	}
	for i, edits := range []map[string]any{
		{"deployment_callback_url": "https://api.github.com/repos/evil/other/actions/runs/4242/deployment_protection_rule"},
		{"deployment_callback_url": "https://api.github.com/repos/Codertocat/Hello-World/actions/runs/x/deployment_protection_rule"},
		{"deployment_callback_url": "https://api.github.com/repos/Codertocat/Hello-World/pulls/1"},
		{"sha": "", "deployment.sha": "main; rm -rf /"},
		{"installation.id": 0},
		{"environment": " "},
	} {
		if code := h.post(t, "deployment_protection_rule", fmt.Sprintf("bad%d", i), gateRequest(t, "prod3", 5000+int64(i), 90, edits), ""); code != 400 {
			t.Errorf("bad request %d (%v): %d, want 400", i, edits, code)
		}
	}
	reqs, err := h.store.GateRequests(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(reqs) != 2 {
		t.Fatalf("stored %d requests, want 2: %+v", len(reqs), reqs)
	}
	got := reqs[0]
	want := store.GateRequest{ID: got.ID, Repo: "codertocat/hello-world", Installation: 42, Environment: "prod3", DeploymentID: 77, SHA: gateSHA,
		Ref: "refs/heads/master", CallbackURL: "https://api.github.com/repos/Codertocat/Hello-World/actions/runs/4242/deployment_protection_rule",
		ActionsRunID: 4242, App: "papi", State: store.GateWaiting, Received: got.Received}
	if got != want {
		t.Fatalf("stored:\n%+v\nwant\n%+v", got, want)
	}
	if reqs[1].App != "" || reqs[1].Environment != "staging" {
		t.Fatalf("an environment no app gates: %+v", reqs[1])
	}
	if woken != 2 {
		t.Fatalf("the gate was woken %d times, want 2 (once per new request)", woken)
	}
	if id, _ := h.store.InstallationFor(t.Context(), "Codertocat/Hello-World"); id != 42 {
		t.Fatalf("installation remembered: %d", id)
	}
}
