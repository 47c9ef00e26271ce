package githubtest

import (
	"encoding/json"
	"testing"
)

// TestWebhookIsMadeFromGitHubsSchema: the payload has the schema's examples where the test
// sets nothing, and one that breaks the schema (an action GitHub does not send, a number
// where it sends text) is refused.
func TestWebhookIsMadeFromGitHubsSchema(t *testing.T) {
	b := Webhook(t, "deployment-protection-rule-requested", map[string]any{"environment": "prod3"})
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	dep, _ := m["deployment"].(map[string]any)
	repo, _ := m["repository"].(map[string]any)
	if m["action"] != "requested" || m["environment"] != "prod3" || dep["id"] != float64(42) || repo["full_name"] == nil {
		t.Fatalf("payload: %s", b)
	}
	for _, bad := range []map[string]any{{"action": "created"}, {"environment": 3}, {"deployment.id": "forty-two"}} {
		ft := &fatalT{TB: t}
		func() {
			defer func() { recover() }()
			Webhook(ft, "deployment-protection-rule-requested", bad)
		}()
		if !ft.failed {
			t.Errorf("%v: accepted", bad)
		}
	}
}

// fatalT records a Fatal instead of ending the test.
type fatalT struct {
	testing.TB
	failed bool
}

func (f *fatalT) Fatalf(format string, args ...any) { f.failed = true; panic("fatal") }
func (f *fatalT) Helper()                           {}
