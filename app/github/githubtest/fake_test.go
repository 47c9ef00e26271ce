package githubtest

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestEnforcedFakeRefusesWhatGitHubRefuses: with the contract enforced, the fake answers
// 422 to what GitHub's description forbids (check run buttons: at most 3; label and
// identifier at most 20 characters, description at most 40) and accepts what is within.
func TestEnforcedFakeRefusesWhatGitHubRefuses(t *testing.T) {
	t.Parallel()
	fake := New(t)
	fake.Enforce(LoadContract(t))
	button := func(label, desc, id string) map[string]string {
		return map[string]string{"label": label, "description": desc, "identifier": id}
	}
	ok := button("Promote to prod3 ✅", "Deploy this release to prod3, now ✅✅", "promote")
	for _, c := range []struct {
		name    string
		actions []map[string]string
		want    int
	}{
		{"three buttons at their limits", []map[string]string{ok, button(strings.Repeat("é", 20), strings.Repeat("é", 40), strings.Repeat("r", 20)), ok}, 201},
		{"four buttons", []map[string]string{ok, ok, ok, ok}, 422},
		{"label of 21", []map[string]string{button(strings.Repeat("é", 21), "x", "promote")}, 422},
		{"description of 41", []map[string]string{button("Promote", strings.Repeat("d", 41), "promote")}, 422},
		{"identifier of 21", []map[string]string{button("Promote", "x", strings.Repeat("i", 21))}, 422},
		{"no identifier", []map[string]string{{"label": "Promote", "description": "x"}}, 422},
	} {
		body, _ := json.Marshal(map[string]any{"name": "immunity / prod3", "head_sha": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
			"status": "completed", "conclusion": "action_required", "output": map[string]string{"title": "t", "summary": "s"}, "actions": c.actions})
		for _, method := range []string{"POST", "PATCH"} {
			path := "/repos/o/r/check-runs"
			want := c.want
			if method == "PATCH" {
				path += "/5"
				if want == 201 {
					want = 200
				}
			}
			req, _ := http.NewRequest(method, fake.URL+path, bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var answer map[string]any
			json.NewDecoder(resp.Body).Decode(&answer)
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Errorf("%s %s: %d %v, want %d", method, c.name, resp.StatusCode, answer, want)
			}
			if want == 422 && !strings.HasPrefix(answer["message"].(string), "Invalid request.") {
				t.Errorf("%s %s: message %q", method, c.name, answer["message"])
			}
		}
	}
	resp, err := http.Post(fake.URL+"/repos/o/r/no-such-thing", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("an unknown operation: %d, want 404", resp.StatusCode)
	}
}

// TestFakeGateRefusesWhatGitHubRefuses: a deployment protection rule takes 10 status
// reports of at most 1,024 characters and one review, only while its run waits for it;
// a body GitHub's description forbids (no comment and no state, an unknown state) is 422.
func TestFakeGateRefusesWhatGitHubRefuses(t *testing.T) {
	t.Parallel()
	fake := New(t)
	fake.Enforce(LoadContract(t))
	fake.AwaitGate("Acme/Papi", 77, "production")
	post := func(body map[string]any) int {
		b, _ := json.Marshal(body)
		resp, err := http.Post(fake.URL+"/repos/acme/papi/actions/runs/77/deployment_protection_rule", "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	report := func(text string) map[string]any {
		return map[string]any{"environment_name": "production", "comment": text}
	}
	for _, c := range []struct {
		name string
		body map[string]any
		want int
	}{
		{"a report of 1,025 characters", report(strings.Repeat("é", 1025)), 422},
		{"another environment", map[string]any{"environment_name": "staging", "comment": "waiting"}, 422},
		{"neither comment nor state", map[string]any{"environment_name": "production"}, 422},
		{"an unknown state", map[string]any{"environment_name": "production", "state": "maybe"}, 422},
	} {
		if got := post(c.body); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
	for i := range 10 {
		if got := post(report(strings.Repeat("é", 1024))); got != 204 {
			t.Fatalf("report %d: %d", i+1, got)
		}
	}
	if got := post(report("one more")); got != 422 {
		t.Errorf("report 11: %d, want 422", got)
	}
	if got := post(map[string]any{"environment_name": "production", "state": "approved", "comment": "ok"}); got != 204 {
		t.Errorf("review: %d", got)
	}
	if got := post(map[string]any{"environment_name": "production", "state": "rejected", "comment": "no"}); got != 422 {
		t.Errorf("second review: %d, want 422", got)
	}
	if g := fake.Gate("acme/papi", 77, "Production"); len(g.Reports) != 10 || g.State != "approved" || g.Comment != "ok" {
		t.Errorf("rule: %+v", g)
	}
}
