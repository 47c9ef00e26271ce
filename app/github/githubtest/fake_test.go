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
