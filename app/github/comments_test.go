package github

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/immunity-app/immunity/app/github/githubtest"
	"github.com/immunity-app/immunity/bot"
	"github.com/immunity-app/immunity/pipeline"
)

const hello = "/repos/Codertocat/Hello-World"

// TestPromoteComment: a /promote comment on a pull request by a writer is acknowledged,
// checked, run for the PR's head commit and answered; every request valid against
// GitHub's description.
func TestPromoteComment(t *testing.T) {
	t.Parallel()
	contract := githubtest.LoadContract(t)
	h := newHarness(t)
	h.fake.SetPermission("Codertocat", "write")
	h.post(t, "issue_comment", "c1", h.prComment(t, "/promote prod3\r\nthanks!"), "")

	want := []bot.Request{{Actor: pipeline.Actor{ID: "github:21031067", Name: "Codertocat", Via: "github", GitHubLogin: "Codertocat", GitHubID: 21031067}, App: "papi", Text: "/promote prod3",
		SHA: prHead, SHASource: "the head of pull request #1"}}
	if d := cmp.Diff(want, h.cmds.Requests()); d != "" {
		t.Errorf("commands (-want +got):\n%s", d)
	}
	wantCalls := []string{
		"POST " + hello + "/issues/comments/492700400/reactions",
		"GET " + hello + "/collaborators/Codertocat/permission",
		"GET " + hello + "/pulls/1",
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

// TestPromoteMergedPull: once a pull request is merged, its commands are about the merge
// commit, the commit the push to the default branch deployed.
func TestPromoteMergedPull(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.fake.SetPermission("Codertocat", "write")
	body := h.prComment(t, "/promote")
	const merge = "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
	h.fake.SetPull("Codertocat/Hello-World", 1, githubtest.Pull{Head: prHead, Merged: true, MergeCommit: merge})
	h.post(t, "issue_comment", "m1", body, "")
	r := h.cmds.Requests()
	if len(r) != 1 || r[0].SHA != merge || r[0].SHASource != "the merge commit of pull request #1" {
		t.Errorf("commands %+v; want one for the merge commit %s", r, merge)
	}
}

// TestPullRequestGone: when the pull request cannot be read, nothing runs and the
// commenter is told why.
func TestPullRequestGone(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.fake.SetPermission("Codertocat", "write")
	body := h.prComment(t, "/promote prod3")
	h.fake.FailCall("GET "+hello+"/pulls/1", githubtest.Fault{Status: 404, Body: `{"message":"Not Found"}`})
	h.post(t, "issue_comment", "g1", body, "")
	if n := len(h.cmds.Requests()); n != 0 {
		t.Errorf("ran %d commands without knowing the pull request's commit", n)
	}
	reply := h.fake.Find("POST " + hello + "/issues/1/comments")
	if len(reply) != 1 || !strings.Contains(reply[0].JSON()["body"].(string), "could not find the commit") {
		t.Errorf("reply: %v", reply)
	}
	if got := h.deliveries(t)["g1"]; got != "failed" {
		t.Errorf("delivery %q, want failed (GitHub may redeliver it)", got)
	}
}

// TestReleaseCommandOnIssue: an issue has no commit: /promote there is answered with
// where it works and runs nothing; commands that need no commit still run.
func TestReleaseCommandOnIssue(t *testing.T) {
	t.Parallel()
	contract := githubtest.LoadContract(t)
	h := newHarness(t)
	h.fake.SetPermission("Codertocat", "write")
	h.post(t, "issue_comment", "i1", fixture(t, "issue_comment.created.json", map[string]any{"comment.body": "/promote prod3", "installation.id": 42}), "")
	if n := len(h.cmds.Requests()); n != 0 {
		t.Errorf("/promote on an issue ran %d commands", n)
	}
	wantCalls := []string{"POST " + hello + "/issues/comments/492700400/reactions", "POST " + hello + "/issues/1/comments"}
	if d := cmp.Diff(wantCalls, h.fake.Calls()); d != "" {
		t.Errorf("GitHub calls (-want +got):\n%s", d)
	}
	if r := h.fake.Find("POST " + hello + "/issues/comments/492700400/reactions"); len(r) != 1 || r[0].JSON()["content"] != "confused" {
		t.Errorf("reactions: %v; want confused", r)
	}
	if r := h.fake.Find("POST " + hello + "/issues/1/comments"); len(r) != 1 || !strings.Contains(r[0].JSON()["body"].(string), "works on a pull request or a commit") {
		t.Errorf("reply: %v", r)
	}
	contract.ValidateAll(t, h.fake)

	for i, text := range []string{"/status", "/lock prod3 release freeze", "/rollback prod3", "/promote prod3 --release 1a2b3c4"} {
		body := fixture(t, "issue_comment.created.json", map[string]any{"comment.body": text, "installation.id": 42, "comment.id": 500 + i})
		h.post(t, "issue_comment", fmt.Sprintf("i%d", i+2), body, "")
	}
	var got []string
	for _, r := range h.cmds.Requests() {
		got = append(got, r.Text+" @"+r.SHA)
	}
	want := []string{"/status @", "/lock prod3 release freeze @", "/rollback prod3 @", "/promote prod3 --release 1a2b3c4 @"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("commands that need no commit (-want +got):\n%s", d)
	}
}

// TestCommitCommentReplyForbidden: the manifest grants contents: read only, and GitHub
// needs contents: write for a commit comment. The refused reply is made visible: a
// confused reaction on the command.
func TestCommitCommentReplyForbidden(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.fake.SetPermission("Codertocat", "write")
	const sha = "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
	h.fake.FailCall("POST "+hello+"/commits/"+sha+"/comments", githubtest.Fault{Status: 403,
		Body: `{"message":"Resource not accessible by integration","documentation_url":"https://docs.github.com/rest/commits/comments#create-a-commit-comment"}`})
	h.post(t, "commit_comment", "cc403", fixture(t, "commit_comment.created.json", map[string]any{"comment.body": "/promote prod3", "installation.id": 42}), "")
	if n := len(h.fake.Find("POST " + hello + "/commits/" + sha + "/comments")); n != 1 {
		t.Errorf("reply tried %d times, want once (a 403 refusal is not retried)", n)
	}
	var got []string
	for _, r := range h.fake.Find("POST " + hello + "/comments/33548674/reactions") {
		got = append(got, r.JSON()["content"].(string))
	}
	if d := cmp.Diff([]string{"eyes", "+1", "confused"}, got); d != "" {
		t.Errorf("reactions (-want +got):\n%s", d)
	}
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
	for i, text := range []string{"You are totally right!", "/cc @octocat", "", "  \n", "/hold", "/lgtm", "/retest", "/approve", "/assign @octocat", "/label bug", "/close", "/unhold"} {
		body := fixture(t, "issue_comment.created.json", map[string]any{"comment.body": text, "installation.id": 42})
		h.post(t, "issue_comment", "n"+string(rune('a'+i)), body, "")
	}
	edited := fixture(t, "issue_comment.edited.json", map[string]any{"comment.body": "/promote prod3", "installation.id": 42})
	h.post(t, "issue_comment", "edited", edited, "")
	if len(h.cmds.Requests()) != 0 || len(h.fake.Requests()) != 0 {
		t.Errorf("plain comments caused commands %v, calls %v", h.cmds.Requests(), h.fake.Calls())
	}
}

// TestTypoInComment: a near miss of a command is answered with "did you mean" and runs
// nothing; no permission is needed to be told.
func TestTypoInComment(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.post(t, "issue_comment", "t1", h.prComment(t, "/promtoe prod3"), "")
	if n := len(h.cmds.Requests()); n != 0 {
		t.Errorf("a mistyped command ran %d commands", n)
	}
	wantCalls := []string{"POST " + hello + "/issues/comments/492700400/reactions", "POST " + hello + "/issues/comments/492700400/reactions", "POST " + hello + "/issues/1/comments"}
	if d := cmp.Diff(wantCalls, h.fake.Calls()); d != "" {
		t.Errorf("GitHub calls (-want +got):\n%s", d)
	}
	if r := h.fake.Find("POST " + hello + "/issues/1/comments"); len(r) != 1 || !strings.Contains(r[0].JSON()["body"].(string), "did you mean `promote`?") {
		t.Errorf("reply: %v", r)
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
	want := []bot.Request{{Actor: pipeline.Actor{ID: "github:2036040", Name: "codebytere", Via: "button", GitHubLogin: "codebytere", GitHubID: 2036040}, App: "electron",
		Text: "/promote prod3 --release 5bd5f196a46b8222fb7484f05faba41a73cf34bd", SHA: "5bd5f196a46b8222fb7484f05faba41a73cf34bd", SHASource: "this check run's commit"}}
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
	// Every press is answered on its check run: done, refused, or why nothing was done.
	wantEng := []string{
		"answer 7 prod3: codebytere pressed Promote: done: /promote prod3 --release 5bd5f196a46b8222fb7484f05faba41a73cf34bd",
		"answer 7 prod3: codebytere pressed Roll back: 5bd5f19 is no longer live in prod3, so nothing was rolled back; roll back the release live there with `/rollback prod3`.",
		`audit octocat (button) rerun hello/sandbox1 "run 9" refused: GitHub permission "read" on github/hello-world; write, maintain or admin needed`,
		"answer 9 sandbox1: octocat pressed Re-run: @octocat re-running needs write access to github/hello-world; you have read. Nothing was done.",
	}
	if d := cmp.Diff(wantEng, h.eng.Calls()); d != "" {
		t.Errorf("engine calls (-want +got):\n%s", d)
	}
	// The writer's re-run is the command rerun (the access grants judge it); the reader's never runs.
	if reqs := h.cmds.Requests(); len(reqs) != 2 || reqs[1].Text != "rerun hello sandbox1 --run 9" || reqs[1].Actor.Via != "button" {
		t.Errorf("commands %+v; want the promote, then rerun hello sandbox1 --run 9", reqs)
	}
}

func TestInstallations(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.post(t, "installation", "i1", fixture(t, "installation.created.json", nil), "")
	h.post(t, "installation_repositories", "i2", fixture(t, "installation_repositories.added.json", nil), "")
	ins, err := h.store.Installations(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, in := range ins {
		got = append(got, in.Repo)
		if in.ID != 957387 {
			t.Errorf("%s: installation %d", in.Repo, in.ID)
		}
	}
	if len(got) == 0 {
		t.Fatal("no repo remembered from installation events")
	}
	h.post(t, "installation", "i3", fixture(t, "installation.deleted.json", map[string]any{"installation.id": 957387}), "")
	if ins, err := h.store.Installations(t.Context()); err != nil || len(ins) != 0 {
		t.Errorf("repos still remembered after the installation was deleted: %v (%v)", ins, err)
	}
}
