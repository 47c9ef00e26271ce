package github

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	gh "github.com/google/go-github/v60/github"

	"github.com/immunity-app/immunity/app/github/githubtest"
	"github.com/immunity-app/immunity/store"
)

// TestFixturesSigned delivers every real payload with a good signature (accepted), a bad
// one and none (401, nothing recorded).
func TestFixturesSigned(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	files, err := filepath.Glob(filepath.Join("..", "..", "fixtures", "github", "*.json"))
	if err != nil || len(files) < 10 {
		t.Fatalf("fixtures: %v, %d files", err, len(files))
	}
	for i, f := range files {
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		event, _, _ := strings.Cut(filepath.Base(f), ".")
		bad := sign(append(bytes.Clone(body), ' '))
		if got := h.post(t, event, fmt.Sprintf("bad-%d", i), body, bad); got != 401 {
			t.Errorf("%s with a wrong signature: %d, want 401", f, got)
		}
		if got := h.post(t, event, fmt.Sprintf("none-%d", i), body, "-"); got != 401 {
			t.Errorf("%s unsigned: %d, want 401", f, got)
		}
		if got := h.post(t, event, fmt.Sprintf("sha1-%d", i), body, "sha1=0123"); got != 401 {
			t.Errorf("%s with a SHA-1 signature: %d, want 401", f, got)
		}
		if got := h.post(t, event, fmt.Sprintf("good-%d", i), body, ""); got != 202 {
			t.Errorf("%s signed: %d, want 202", f, got)
		}
	}
	d := h.deliveries(t)
	if len(d) != len(files) {
		t.Errorf("recorded %d deliveries, want %d (only the signed ones): %v", len(d), len(files), d)
	}
	for id, state := range d {
		if !strings.HasPrefix(id, "good-") || state != "done" {
			t.Errorf("delivery %s: %s", id, state)
		}
	}
}

func TestBodyTooLarge(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	body := bytes.Repeat([]byte(" "), MaxBody+1)
	if got := h.post(t, "push", "big", body, ""); got != 413 {
		t.Errorf("a %d byte body: %d, want 413", len(body), got)
	}
	if len(h.deliveries(t)) != 0 {
		t.Error("an oversized delivery was recorded")
	}
}

func TestPushStartsRun(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	if got := h.post(t, "push", "p1", fixture(t, "push.json", nil), ""); got != 202 {
		t.Fatalf("push: %d", got)
	}
	h.post(t, "push", "p2", fixture(t, "push.tag.json", nil), "")
	h.post(t, "push", "p3", fixture(t, "push.json", map[string]any{"ref": "refs/heads/feature", "after": "1111111111111111111111111111111111111111"}), "")
	h.post(t, "push", "p4", fixture(t, "push.json", map[string]any{"deleted": true, "after": "0000000000000000000000000000000000000000"}), "")
	want := []string{"start papi@0000000000000000000000000000000000000000 push master by Codertocat (push, Codertocat)"}
	// The fixture is a branch creation whose after is a real commit; read it from the file.
	body := fixture(t, "push.json", nil)
	after := jsonField(t, body, "after")
	want[0] = strings.Replace(want[0], "0000000000000000000000000000000000000000", after, 1)
	if d := cmp.Diff(want, h.eng.Calls()); d != "" {
		t.Errorf("engine calls (-want +got):\n%s", d)
	}
	if id, _ := h.store.InstallationFor(t.Context(), "codertocat/hello-world"); id != 1 {
		t.Errorf("installation of the pushed repo: %d, want 1 (from the payload)", id)
	}
}

// TestPushPayloadReadAsGoGithubReadsIt: the push struct of our own (decoded instead of
// go-github's PushEvent, whose commits cost most of a delivery) reads every field its
// work uses as go-github does.
func TestPushPayloadReadAsGoGithubReadsIt(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"push.json", "push.tag.json"} {
		body := fixture(t, name, map[string]any{"deleted": true, "installation": map[string]any{"id": 7}})
		var want gh.PushEvent
		if err := json.Unmarshal(body, &want); err != nil {
			t.Fatal(err)
		}
		p, err := decode("push", body)
		if err != nil {
			t.Fatal(err)
		}
		got := p.(*pushEvent)
		for _, f := range []struct{ field, got, want string }{
			{"ref", got.Ref, want.GetRef()},
			{"before", got.Before, want.GetBefore()},
			{"after", got.After, want.GetAfter()},
			{"deleted", fmt.Sprint(got.Deleted), fmt.Sprint(want.GetDeleted())},
			{"repository.full_name", got.Repository.FullName, want.GetRepo().GetFullName()},
			{"repository.owner.login", got.Repository.Owner.Login, want.GetRepo().GetOwner().GetLogin()},
			{"installation.id", fmt.Sprint(got.Installation.ID), fmt.Sprint(want.GetInstallation().GetID())},
			{"pusher.name", got.Pusher.Name, want.GetPusher().GetName()},
			{"sender.login", got.Sender.Login, want.GetSender().GetLogin()},
			{"sender.id", fmt.Sprint(got.Sender.ID), fmt.Sprint(want.GetSender().GetID())},
		} {
			if f.got != f.want || f.want == "" || f.want == "0" {
				t.Errorf("%s: %s = %q, go-github reads %q", name, f.field, f.got, f.want)
			}
		}
	}
}

// TestDuplicates: a redelivered id, and the same comment under a second delivery id (an
// org hook and a repo hook), do nothing the second time.
func TestDuplicates(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.fake.SetPermission("Codertocat", "write")
	body := h.prComment(t, "/promote prod3")
	for _, id := range []string{"d1", "d1", "d2"} {
		h.post(t, "issue_comment", id, body, "")
	}
	push := fixture(t, "push.json", nil)
	h.post(t, "push", "d3", push, "")
	h.post(t, "push", "d4", push, "")
	if n := len(h.cmds.Requests()); n != 1 {
		t.Errorf("the command ran %d times, want 1", n)
	}
	if n := len(h.eng.Calls()); n != 1 {
		t.Errorf("engine calls %v, want one run started", h.eng.Calls())
	}
	want := map[string]string{"d1": "done", "d2": "duplicate", "d3": "done", "d4": "duplicate"}
	if d := cmp.Diff(want, h.deliveries(t)); d != "" {
		t.Errorf("deliveries (-want +got):\n%s", d)
	}
}

// TestReplayedButtonsUnderAnotherID: a check run's button press and a "Re-run all checks"
// sent again under another delivery id (which the signature does not cover) are the same
// event and do nothing the second time; a press whose check run has changed since is
// another press.
func TestReplayedButtonsUnderAnotherID(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.fake.SetPermission("codebytere", "write")
	h.fake.SetPermission("Codertocat", "write")
	storeRun(t, h.store, suiteSHA, map[string]store.StageState{"sandbox1": store.StageFailed, "prod3": store.StageSkipped})
	press := fixture(t, "check_run.requested_action.json", map[string]any{
		"check_run.external_id": "run/7/prod3", "check_run.name": "immunity / prod3", "requested_action.identifier": "promote"})
	rerun := fixture(t, "check_suite.rerequested.json", map[string]any{"sender.login": "Codertocat", "sender.type": "User"})
	for _, id := range []string{"b1", "b2"} {
		h.post(t, "check_run", id, press, "")
		h.post(t, "check_suite", "s"+id, rerun, "")
	}
	if reqs := h.cmds.Requests(); len(reqs) != 2 || !strings.HasPrefix(reqs[0].Text, "/promote prod3") || !strings.HasPrefix(reqs[1].Text, "rerun papi sandbox1") {
		t.Errorf("commands %+v; want one promote and one re-run", reqs)
	}
	want := map[string]string{"b1": "done", "b2": "duplicate", "sb1": "done", "sb2": "duplicate"}
	if d := cmp.Diff(want, h.deliveries(t)); d != "" {
		t.Errorf("deliveries (-want +got):\n%s", d)
	}
	// Pressed again once its check run shows the answer: another press.
	again := fixture(t, "check_run.requested_action.json", map[string]any{
		"check_run.external_id": "run/7/prod3", "check_run.name": "immunity / prod3", "requested_action.identifier": "promote",
		"check_run.output.summary": "Answers to buttons: done"})
	h.post(t, "check_run", "b3", again, "")
	if n := len(h.cmds.Requests()); n != 3 {
		t.Errorf("a second press ran %d commands in all, want 3", n)
	}
}

func TestSignatureCheck(t *testing.T) {
	t.Parallel()
	body := []byte(`{"zen":"Design for failure."}`)
	for _, c := range []struct {
		header string
		ok     bool
	}{
		{sign(body), true},
		{"", false},
		{"sha256=", false},
		{"sha256=zz", false},
		{strings.ToUpper(sign(body)), false},
		{sign([]byte(`{"zen":"Design for failure!"}`)), false},
	} {
		if err := checkSignature([]byte(secret), c.header, body); (err == nil) != c.ok {
			t.Errorf("signature %q: err %v, want ok=%v", c.header, err, c.ok)
		}
	}
}

// TestRedeliverFailed: a delivery whose work failed is done again when GitHub redelivers it.
func TestRedeliverFailed(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.fake.SetPermission("Codertocat", "write")
	h.fake.FailNext(githubtest.Fault{Status: 404, Body: `{"message":"Not Found"}`}, githubtest.Fault{Status: 404, Body: `{"message":"Not Found"}`}) // the installation token, twice: the eyes reaction and the permission check fail
	body := h.prComment(t, "/promote prod3")
	h.post(t, "issue_comment", "f1", body, "")
	if got := h.deliveries(t)["f1"]; got != "failed" {
		t.Fatalf("delivery state %q, want failed (GitHub refused the permission check)", got)
	}
	h.post(t, "issue_comment", "f1", body, "")
	if got := h.deliveries(t)["f1"]; got != "done" || len(h.cmds.Requests()) != 1 {
		t.Errorf("redelivered: state %q, commands %d; want done, 1", got, len(h.cmds.Requests()))
	}
}

// TestFormEncodedWebhookIsExplained: an App whose webhook content type is form-encoded
// gets a 400 that says what to change, and nothing is recorded.
func TestFormEncodedWebhookIsExplained(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	body := []byte("payload=" + url.QueryEscape(`{"zen":"Design for failure."}`))
	req, _ := http.NewRequest("POST", h.http.URL+"/webhooks/github", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-GitHub-Event", "ping")
	req.Header.Set("X-GitHub-Delivery", "form1")
	req.Header.Set("X-Hub-Signature-256", sign(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(b), "set the webhook content type to application/json") {
		t.Fatalf("form-encoded delivery: %d %q", resp.StatusCode, b)
	}
	if len(h.deliveries(t)) != 0 {
		t.Error("a form-encoded delivery was recorded")
	}
}
