package github

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/immunity-app/immunity/app/github/githubtest"
	"github.com/immunity-app/immunity/bot"
	"github.com/immunity-app/immunity/pipeline"
)

const hello = "/repos/Codertocat/Hello-World"

// TestPromoteComment: a /promote comment by a writer is acknowledged, checked, run and
// answered; every request valid against GitHub's description.
func TestPromoteComment(t *testing.T) {
	t.Parallel()
	contract := githubtest.LoadContract(t)
	h := newHarness(t)
	h.fake.SetPermission("Codertocat", "write")
	body := fixture(t, "issue_comment.created.json", map[string]any{"comment.body": "/promote prod3\r\nthanks!", "installation.id": 42})
	h.post(t, "issue_comment", "c1", body, "")

	want := []bot.Request{{Actor: pipeline.Actor{Name: "Codertocat", Via: "github", GitHubLogin: "Codertocat"}, App: "papi", Text: "/promote prod3"}}
	if d := cmp.Diff(want, h.cmds.Requests()); d != "" {
		t.Errorf("commands (-want +got):\n%s", d)
	}
	wantCalls := []string{
		"POST " + hello + "/issues/comments/492700400/reactions",
		"GET " + hello + "/collaborators/Codertocat/permission",
		"POST " + hello + "/issues/comments/492700400/reactions",
		"POST " + hello + "/issues/1/comments",
	}
	if d := cmp.Diff(wantCalls, h.fake.Calls()); d != "" {
		t.Errorf("GitHub calls (-want +got):\n%s", d)
	}
	reactions := h.fake.Find("POST " + hello + "/issues/comments/492700400/reactions")
	if len(reactions) == 2 && (reactions[0].JSON()["content"] != "eyes" || reactions[1].JSON()["content"] != "+1") {
		t.Errorf("reactions %s, %s; want eyes then +1", reactions[0].Body, reactions[1].Body)
	}
	if r := h.fake.Find("POST " + hello + "/issues/1/comments"); len(r) != 1 || r[0].JSON()["body"] != "done: /promote prod3" {
		t.Errorf("reply: %v", r)
	}
	contract.ValidateAll(t, h.fake)
}

// TestReadOnlyRefused: a read-only commenter changes nothing; the refusal is audited and
// answered.
func TestReadOnlyRefused(t *testing.T) {
	t.Parallel()
	contract := githubtest.LoadContract(t)
	h := newHarness(t)
	h.fake.SetPermission("Codertocat", "read")
	body := fixture(t, "issue_comment.created.json", map[string]any{"comment.body": "/rollback prod3", "installation.id": 42})
	h.post(t, "issue_comment", "c1", body, "")
	if n := len(h.cmds.Requests()); n != 0 {
		t.Errorf("a read-only commenter ran %d commands", n)
	}
	want := []string{`audit Codertocat (github) rollback papi/prod3 "/rollback prod3" refused: GitHub permission "read" on Codertocat/Hello-World; write, maintain or admin needed`}
	if d := cmp.Diff(want, h.eng.Calls()); d != "" {
		t.Errorf("engine calls (-want +got):\n%s", d)
	}
	r := h.fake.Find("POST " + hello + "/issues/comments/492700400/reactions")
	if len(r) != 2 || r[1].JSON()["content"] != "-1" {
		t.Errorf("reactions: %v", r)
	}
	reply := h.fake.Find("POST " + hello + "/issues/1/comments")
	if len(reply) != 1 || !strings.Contains(reply[0].JSON()["body"].(string), "needs write access") {
		t.Errorf("reply: %v", reply)
	}
	contract.ValidateAll(t, h.fake)
}

func TestNotACommand(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	for i, text := range []string{"You are totally right!", "/cc @octocat", "", "  \n"} {
		body := fixture(t, "issue_comment.created.json", map[string]any{"comment.body": text, "installation.id": 42})
		h.post(t, "issue_comment", "n"+string(rune('a'+i)), body, "")
	}
	edited := fixture(t, "issue_comment.edited.json", map[string]any{"comment.body": "/promote prod3", "installation.id": 42})
	h.post(t, "issue_comment", "edited", edited, "")
	if len(h.cmds.Requests()) != 0 || len(h.fake.Requests()) != 0 {
		t.Errorf("plain comments caused commands %v, calls %v", h.cmds.Requests(), h.fake.Calls())
	}
}

// TestCommitCommentRollback: /rollback on a commit rolls back every region where it is live.
func TestCommitCommentRollback(t *testing.T) {
	t.Parallel()
	contract := githubtest.LoadContract(t)
	h := newHarness(t)
	h.fake.SetPermission("Codertocat", "admin")
	const sha = "6113728f27ae82c7b1a177c8d03f9e96e0adf246" // the fixture's commit_id
	h.eng.status = []pipeline.AppStatus{{App: "papi", Regions: []pipeline.RegionStatus{
		{Name: "sandbox1", Live: map[string]string{"s1": "aaaaaaa"}, LiveSHA: "aaaaaaa"},
		{Name: "prod3", Live: map[string]string{"p1": sha, "p2": "bbbbbbb"}},
		{Name: "prod4", Live: map[string]string{"p1": sha}, LiveSHA: sha},
	}}}
	body := fixture(t, "commit_comment.created.json", map[string]any{"comment.body": "/rollback", "installation.id": 42})
	h.post(t, "commit_comment", "cc1", body, "")
	var got []string
	for _, r := range h.cmds.Requests() {
		got = append(got, r.Text+" @"+r.SHA)
	}
	want := []string{"/rollback prod3 @" + sha, "/rollback prod4 @" + sha}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("commands (-want +got):\n%s", d)
	}
	if r := h.fake.Find("POST " + hello + "/commits/" + sha + "/comments"); len(r) != 1 {
		t.Errorf("replies on the commit: %d, want 1", len(r))
	}
	if r := h.fake.Find("POST " + hello + "/comments/33548674/reactions"); len(r) != 2 {
		t.Errorf("reactions on the commit comment: %d, want 2", len(r))
	}
	contract.ValidateAll(t, h.fake)
}

// TestCheckRunButtons: Promote runs the promote command for that run's release; Rerun
// re-runs the stage; both only for someone who may write.
func TestCheckRunButtons(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.fake.SetPermission("codebytere", "maintain")
	body := fixture(t, "check_run.requested_action.json", map[string]any{
		"check_run.external_id": "run/7/prod3", "check_run.name": "immunity / prod3", "requested_action.identifier": "promote"})
	h.post(t, "check_run", "b1", body, "")
	want := []bot.Request{{Actor: pipeline.Actor{Name: "codebytere", Via: "button", GitHubLogin: "codebytere"}, App: "electron",
		Text: "/promote prod3 --release 5bd5f196a46b8222fb7484f05faba41a73cf34bd", SHA: "5bd5f196a46b8222fb7484f05faba41a73cf34bd"}}
	if d := cmp.Diff(want, h.cmds.Requests()); d != "" {
		t.Errorf("commands (-want +got):\n%s", d)
	}
	// A Roll back button on a release no longer live does nothing.
	old := fixture(t, "check_run.requested_action.json", map[string]any{
		"check_run.external_id": "run/7/prod3", "requested_action.identifier": "rollback"})
	h.post(t, "check_run", "b2", old, "")
	if n := len(h.cmds.Requests()); n != 1 {
		t.Errorf("rollback of a release not live ran a command")
	}

	h.fake.SetPermission("octocat", "write")
	rr := fixture(t, "check_run.rerequested.json", map[string]any{"check_run.external_id": "run/9/sandbox1"})
	h.post(t, "check_run", "r1", rr, "")
	h.fake.SetPermission("octocat", "read")
	h.post(t, "check_run", "r2", fixture(t, "check_run.rerequested.json", map[string]any{"check_run.external_id": "run/9/sandbox1", "check_run.id": 5}), "")
	wantEng := []string{
		"rerun 9 sandbox1 by octocat (button)",
		`audit octocat (button) rerun hello/sandbox1 "run 9" refused: GitHub permission "read" on github/hello-world; write, maintain or admin needed`,
	}
	if d := cmp.Diff(wantEng, h.eng.Calls()); d != "" {
		t.Errorf("engine calls (-want +got):\n%s", d)
	}
}

func TestInstallations(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.post(t, "installation", "i1", fixture(t, "installation.created.json", nil), "")
	h.post(t, "installation_repositories", "i2", fixture(t, "installation_repositories.added.json", nil), "")
	rows, err := h.store.DB().Query(`SELECT repo, installation_id FROM github_installations ORDER BY repo`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var repo string
		var id int64
		rows.Scan(&repo, &id)
		got = append(got, repo)
		if id != 957387 {
			t.Errorf("%s: installation %d", repo, id)
		}
	}
	rows.Close()
	if len(got) == 0 {
		t.Fatal("no repo remembered from installation events")
	}
	h.post(t, "installation", "i3", fixture(t, "installation.deleted.json", map[string]any{"installation.id": 957387}), "")
	var n int
	h.store.DB().QueryRow(`SELECT count(*) FROM github_installations`).Scan(&n)
	if n != 0 {
		t.Errorf("%d repos still remembered after the installation was deleted", n)
	}
}
