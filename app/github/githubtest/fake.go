// Package githubtest is a fake GitHub REST API for tests: an httptest server that answers
// the calls Immunity makes with realistic JSON, records every request, can be told to
// fail the next requests (rate limits, 5xx), and can check each recorded request against
// GitHub's official OpenAPI description (see Contract).
package githubtest

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Request is one request the fake received.
type Request struct {
	Method, Path, Query string
	Header              http.Header
	Body                []byte
}

// Call is "METHOD /path", the short form tests compare.
func (r Request) Call() string { return r.Method + " " + r.Path }

// JSON decodes the request body.
func (r Request) JSON() map[string]any {
	var m map[string]any
	json.Unmarshal(r.Body, &m)
	return m
}

// Fault is an answer given instead of the normal one.
type Fault struct {
	Status int
	Header map[string]string
	Body   string
}

// Server is the fake GitHub.
type Server struct {
	*httptest.Server
	mu       sync.Mutex
	reqs     []Request
	faults   []Fault
	onCall   map[string][]Fault // "METHOD /path" -> faults for its next requests
	nextID   int64
	perms    map[string]string // login -> permission; default "read"
	teams    map[string]bool   // "org/slug/login" -> active member
	pulls    map[string]Pull   // "owner/repo#number" -> pull request
	Manifest map[string]any    // the app-manifest conversion answer
	contract *Contract         // when set, requests it refuses are answered 422
	deps     map[int64]*Deployment
	depOrder []int64
	checks   []*CheckRun          // check runs created, oldest first
	lose     map[string]int       // "METHOD /path" -> requests carried out whose answer is lost
	gates    map[string]*GateRule // "owner/repo/RUN/environment", lower case

	// The OAuth web flow ("Sign in with GitHub"): the App's client, who is signed in at
	// GitHub (and consents at once), the codes and tokens given out.
	// OAuthCallbackURL is the App's registered callback (its manifest's callback_urls).
	OAuthClientID, OAuthClientSecret, OAuthCallbackURL string
	signedIn                                           *OAuthUser
	codes                                              map[string]oauthGrant // code -> grant
	tokens                                             map[string]OAuthUser  // access token -> user
}

// GateRule is a workflow run's deployment waiting for this App's custom deployment
// protection rule in one environment: the status reports it was sent, then its review.
type GateRule struct {
	Reports []string
	State   string // approved or rejected once reviewed
	Comment string // the review's comment
}

// GitHub's limits on a custom deployment protection rule.
const (
	MaxGateReports = 10   // status reports per rule
	MaxGateComment = 1024 // characters of a report's or review's comment
)

// AwaitGate makes a workflow run of repo ("owner/repo") wait for this App's rule in an
// environment, as GitHub does when it sends deployment_protection_rule (a rule already
// known is left as it is).
func (s *Server) AwaitGate(repo string, runID int64, environment string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := gateKey(repo, strconv.FormatInt(runID, 10), environment)
	if s.gates[k] == nil {
		s.gates[k] = &GateRule{}
	}
}

// Gate returns what a rule was sent.
func (s *Server) Gate(repo string, runID int64, environment string) GateRule {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.gates[gateKey(repo, strconv.FormatInt(runID, 10), environment)]
	if g == nil {
		return GateRule{}
	}
	out := *g
	out.Reports = append([]string(nil), g.Reports...)
	return out
}

func gateKey(repo, run, env string) string { return strings.ToLower(repo + "/" + run + "/" + env) }

// Deployment is a deployment the fake holds, with the states of the statuses posted to
// it, in order.
type Deployment struct {
	ID                    int64
	Repo                  string // owner/repo as in the path
	Environment, Ref      string
	Task                  string
	Production, Transient bool
	Statuses              []string
	Payload               map[string]any // as created
	body                  map[string]any // what GET answers
}

// CheckRun is a check run the fake holds: what it was created with, with every update
// applied.
type CheckRun struct {
	ID         int64
	Repo       string // owner/repo as in the path
	Name       string
	HeadSHA    string
	ExternalID string
	Status     string
	body       map[string]any
}

// CheckRuns lists the check runs created, oldest first.
func (s *Server) CheckRuns() []CheckRun {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []CheckRun
	for _, c := range s.checks {
		out = append(out, *c)
	}
	return out
}

// LoseAnswer makes the next n requests of one call ("POST /repos/o/r/check-runs") be
// carried out as GitHub would, and then their connection cut before the answer: the
// caller cannot tell whether they took effect.
func (s *Server) LoseAnswer(call string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lose[call] += n
}

// State is the deployment's last status ("" when none).
func (d Deployment) State() string {
	if len(d.Statuses) == 0 {
		return ""
	}
	return d.Statuses[len(d.Statuses)-1]
}

// Deployments lists the deployments created (or seeded), oldest first.
func (s *Server) Deployments() []Deployment {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Deployment
	for _, id := range s.depOrder {
		d := *s.deps[id]
		d.Statuses = append([]string(nil), d.Statuses...)
		out = append(out, d)
	}
	return out
}

// SeedDeployment makes the fake hold a deployment created before the test, in state.
func (s *Server) SeedDeployment(id int64, repo, env, ref, state string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deps[id] = &Deployment{ID: id, Repo: repo, Environment: env, Ref: ref, Task: "deploy", Statuses: []string{state}}
	s.depOrder = append(s.depOrder, id)
}

// OAuthUser is a person signed in at GitHub.
type OAuthUser struct {
	Login string
	ID    int64
}

type oauthGrant struct {
	user      OAuthUser
	redirect  string
	challenge string // PKCE: base64url(SHA-256(code_verifier)), when the client sent one
}

// SignIn makes u the person signed in at the fake GitHub, who authorizes any App that asks.
func (s *Server) SignIn(u OAuthUser) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.signedIn = &u
}

// New starts a fake GitHub, closed with the test.
func New(t testing.TB) *Server {
	s := &Server{nextID: 1000, perms: map[string]string{}, teams: map[string]bool{}, pulls: map[string]Pull{}, onCall: map[string][]Fault{}, lose: map[string]int{},
		deps: map[int64]*Deployment{}, gates: map[string]*GateRule{}, codes: map[string]oauthGrant{}, tokens: map[string]OAuthUser{}}
	mux := http.NewServeMux()
	s.routes(mux)
	s.Server = httptest.NewServer(s.record(mux))
	t.Cleanup(s.Close)
	return s
}

// URL of the API root with a trailing slash (what api_url is set to).
func (s *Server) APIURL() string { return s.Server.URL + "/" }

// Enforce makes the fake refuse, as GitHub does, every request that GitHub's REST
// description does not allow (more than 3 check run buttons, a label over 20 characters,
// an unknown conclusion, ...): 422 "Invalid request." with what is wrong, and nothing is
// created. The request is still recorded, so ValidateAll reports it too.
func (s *Server) Enforce(c *Contract) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.contract = c
}

// SetPermission sets a user's permission on every repo: admin, write, read, none.
func (s *Server) SetPermission(login, perm string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.perms[login] = perm
}

// Pull is a pull request the fake knows: its head commit and, once merged, its merge commit.
type Pull struct {
	Head, Branch string // head commit and branch
	Merged       bool
	MergeCommit  string
}

// SetPull makes GET /repos/OWNER/REPO/pulls/NUMBER answer p (repo is "owner/repo").
func (s *Server) SetPull(repo string, number int, p Pull) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pulls[strings.ToLower(repo)+"#"+strconv.Itoa(number)] = p
}

// AddTeamMember makes login an active member of org/slug.
func (s *Server) AddTeamMember(org, slug, login string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.teams[org+"/"+slug+"/"+login] = true
}

// FailNext makes the next len(f) requests answer with the given faults, in order.
func (s *Server) FailNext(f ...Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, f...)
}

// FailCall makes the next len(f) requests of one call ("POST /repos/o/r/commits/SHA/comments")
// answer with the given faults, in order; other calls are answered normally.
func (s *Server) FailCall(call string, f ...Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onCall[call] = append(s.onCall[call], f...)
}

// Requests returns what was received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.reqs...)
}

// Calls lists the requests as "METHOD /path", leaving out installation token requests.
func (s *Server) Calls() []string {
	var out []string
	for _, r := range s.Requests() {
		if !strings.HasSuffix(r.Path, "/access_tokens") {
			out = append(out, r.Call())
		}
	}
	return out
}

// Find returns the recorded requests for a call ("POST /repos/o/r/check-runs").
func (s *Server) Find(call string) []Request {
	var out []Request
	for _, r := range s.Requests() {
		if r.Call() == call {
			out = append(out, r)
		}
	}
	return out
}

func (s *Server) record(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		req := Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header.Clone(), Body: body}
		s.mu.Lock()
		s.reqs = append(s.reqs, req)
		c := s.contract
		var f *Fault
		call := r.Method + " " + r.URL.Path
		if fs := s.onCall[call]; len(fs) > 0 {
			f = &fs[0]
			s.onCall[call] = fs[1:]
		} else if len(s.faults) > 0 {
			f = &s.faults[0]
			s.faults = s.faults[1:]
		}
		s.mu.Unlock()
		if f == nil && c != nil {
			if err := c.Validate(req); errors.Is(err, errNoOperation) {
				f = &Fault{Status: http.StatusNotFound, Body: `{"message":"Not Found","documentation_url":"https://docs.github.com/rest","status":"404"}`}
			} else if err != nil {
				msg, _ := json.Marshal(map[string]string{"message": "Invalid request.\n\n" + err.Error(),
					"documentation_url": "https://docs.github.com/rest", "status": "422"})
				f = &Fault{Status: http.StatusUnprocessableEntity, Body: string(msg)}
			}
		}
		if f != nil {
			for k, v := range f.Header {
				w.Header().Set(k, v)
			}
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			w.WriteHeader(f.Status)
			io.WriteString(w, f.Body)
			return
		}
		s.mu.Lock()
		lose := s.lose[call] > 0
		if lose {
			s.lose[call]--
		}
		s.mu.Unlock()
		if lose {
			next.ServeHTTP(httptest.NewRecorder(), r) // done, and the answer is lost on the way
			if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
				conn.Close()
			}
			return
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Header().Set("X-RateLimit-Limit", "5000")
		w.Header().Set("X-RateLimit-Remaining", "4999")
		w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10))
		next.ServeHTTP(w, r)
	})
}

func (s *Server) id() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextID++
	return s.nextID
}

func reply(w http.ResponseWriter, status int, v any) {
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func (s *Server) user(login string) map[string]any {
	return map[string]any{"login": login, "id": 1, "node_id": "MDQ6VXNlcjE=", "type": "User", "site_admin": false,
		"url": s.URL + "/users/" + login, "html_url": "https://github.com/" + login}
}

func (s *Server) routes(mux *http.ServeMux) {
	mux.HandleFunc("POST /app/installations/{id}/access_tokens", func(w http.ResponseWriter, r *http.Request) {
		reply(w, 201, map[string]any{"token": "ghs_fake" + r.PathValue("id"), "expires_at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339),
			"permissions":          map[string]string{"checks": "write", "deployments": "write", "contents": "read", "issues": "write", "pull_requests": "write", "metadata": "read"},
			"repository_selection": "selected"})
	})
	mux.HandleFunc("GET /repos/{owner}/{repo}/installation", func(w http.ResponseWriter, r *http.Request) {
		reply(w, 200, map[string]any{"id": 4242, "app_id": 1, "target_type": "Organization", "account": s.user(r.PathValue("owner"))})
	})
	mux.HandleFunc("GET /orgs/{org}/installation", func(w http.ResponseWriter, r *http.Request) {
		reply(w, 200, map[string]any{"id": 4343, "app_id": 1, "target_type": "Organization", "account": s.user(r.PathValue("org"))})
	})
	mux.HandleFunc("GET /orgs/{org}/teams/{slug}/memberships/{user}", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		ok := s.teams[r.PathValue("org")+"/"+r.PathValue("slug")+"/"+r.PathValue("user")]
		s.mu.Unlock()
		if !ok {
			reply(w, 404, map[string]any{"message": "Not Found"})
			return
		}
		reply(w, 200, map[string]any{"url": s.URL + r.URL.Path, "role": "member", "state": "active"})
	})
	mux.HandleFunc("POST /repos/{owner}/{repo}/check-runs", func(w http.ResponseWriter, r *http.Request) {
		reply(w, 201, s.checkRun(r, 0))
	})
	mux.HandleFunc("PATCH /repos/{owner}/{repo}/check-runs/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
		reply(w, 200, s.checkRun(r, id))
	})
	mux.HandleFunc("GET /repos/{owner}/{repo}/commits/{ref}/check-runs", s.listCheckRuns)
	mux.HandleFunc("GET /repos/{owner}/{repo}/deployments", s.listDeployments)
	mux.HandleFunc("POST /repos/{owner}/{repo}/deployments", func(w http.ResponseWriter, r *http.Request) {
		var in map[string]any
		json.NewDecoder(r.Body).Decode(&in)
		id := s.id()
		in["id"], in["url"], in["creator"] = id, fmt.Sprintf("%s/repos/%s/%s/deployments/%d", s.URL, r.PathValue("owner"), r.PathValue("repo"), id), s.user("immunity[bot]")
		in["sha"], in["created_at"], in["updated_at"] = in["ref"], now(), now()
		d := &Deployment{ID: id, Repo: r.PathValue("owner") + "/" + r.PathValue("repo")}
		d.Environment, _ = in["environment"].(string)
		d.Ref, _ = in["ref"].(string)
		d.Task, _ = in["task"].(string)
		d.Production, _ = in["production_environment"].(bool)
		d.Transient, _ = in["transient_environment"].(bool)
		d.Payload, _ = in["payload"].(map[string]any)
		d.body = in
		s.mu.Lock()
		s.deps[id] = d
		s.depOrder = append(s.depOrder, id)
		s.mu.Unlock()
		reply(w, 201, in)
	})
	mux.HandleFunc("POST /repos/{owner}/{repo}/deployments/{id}/statuses", func(w http.ResponseWriter, r *http.Request) {
		var in map[string]any
		json.NewDecoder(r.Body).Decode(&in)
		id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
		s.mu.Lock()
		d, ok := s.deps[id]
		if ok {
			state, _ := in["state"].(string)
			d.Statuses = append(d.Statuses, state)
		}
		s.mu.Unlock()
		if !ok {
			reply(w, 404, map[string]any{"message": "Not Found", "documentation_url": "https://docs.github.com/rest/deployments/statuses#create-a-deployment-status"})
			return
		}
		in["id"], in["creator"], in["created_at"], in["updated_at"] = s.id(), s.user("immunity[bot]"), now(), now()
		reply(w, 201, in)
	})
	mux.HandleFunc("POST /repos/{owner}/{repo}/actions/runs/{run}/deployment_protection_rule", s.reviewGate)
	mux.HandleFunc("GET /repos/{owner}/{repo}/collaborators/{user}/permission", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		p, ok := s.perms[r.PathValue("user")]
		s.mu.Unlock()
		if !ok {
			p = "read"
		}
		reply(w, 200, map[string]any{"permission": p, "role_name": p, "user": s.user(r.PathValue("user"))})
	})
	mux.HandleFunc("GET /repos/{owner}/{repo}/pulls/{number}", func(w http.ResponseWriter, r *http.Request) {
		repo := r.PathValue("owner") + "/" + r.PathValue("repo")
		s.mu.Lock()
		p, ok := s.pulls[strings.ToLower(repo)+"#"+r.PathValue("number")]
		s.mu.Unlock()
		if !ok {
			reply(w, 404, map[string]any{"message": "Not Found", "documentation_url": "https://docs.github.com/rest/pulls/pulls#get-a-pull-request"})
			return
		}
		reply(w, 200, s.pull(repo, r.PathValue("number"), p))
	})
	react := func(w http.ResponseWriter, r *http.Request) {
		var in map[string]any
		json.NewDecoder(r.Body).Decode(&in)
		reply(w, 201, map[string]any{"id": s.id(), "node_id": "REA_1", "content": in["content"], "user": s.user("immunity[bot]"), "created_at": now()})
	}
	mux.HandleFunc("POST /repos/{owner}/{repo}/issues/comments/{id}/reactions", react)
	mux.HandleFunc("POST /repos/{owner}/{repo}/comments/{id}/reactions", react)
	comment := func(w http.ResponseWriter, r *http.Request) {
		var in map[string]any
		json.NewDecoder(r.Body).Decode(&in)
		reply(w, 201, map[string]any{"id": s.id(), "node_id": "IC_1", "body": in["body"], "user": s.user("immunity[bot]"), "created_at": now(), "updated_at": now()})
	}
	mux.HandleFunc("POST /repos/{owner}/{repo}/issues/{number}/comments", comment)
	mux.HandleFunc("POST /repos/{owner}/{repo}/commits/{sha}/comments", comment)
	mux.HandleFunc("POST /app-manifests/{code}/conversions", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		m := s.Manifest
		s.mu.Unlock()
		if m == nil {
			reply(w, 404, map[string]any{"message": "Not Found"})
			return
		}
		reply(w, 201, m)
	})
	s.oauthRoutes(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		reply(w, 404, map[string]any{"message": "Not Found", "documentation_url": "https://docs.github.com/rest"})
	})
}

// reviewGate takes a status report (no state) or the review of a waiting rule, and
// refuses, as GitHub does, a rule that is not waiting (unknown, or reviewed already), an
// eleventh status report and a comment over 1,024 characters.
func (s *Server) reviewGate(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Environment string  `json:"environment_name"`
		State       *string `json:"state"`
		Comment     string  `json:"comment"`
	}
	json.NewDecoder(r.Body).Decode(&in)
	refuse := func(msg string) {
		reply(w, 422, map[string]any{"message": msg, "documentation_url": "https://docs.github.com/rest/actions/workflow-runs#review-custom-deployment-protection-rules-for-a-workflow-run", "status": "422"})
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.gates[gateKey(r.PathValue("owner")+"/"+r.PathValue("repo"), r.PathValue("run"), in.Environment)]
	switch {
	case g == nil:
		refuse(fmt.Sprintf("No pending deployment protection rule for environment %q of this workflow run", in.Environment))
	case g.State != "":
		refuse(fmt.Sprintf("The deployment protection rule of environment %q was already %s", in.Environment, g.State))
	case len([]rune(in.Comment)) > MaxGateComment:
		refuse(fmt.Sprintf("comment is too long (maximum is %d characters)", MaxGateComment))
	case in.State == nil && len(g.Reports) >= MaxGateReports:
		refuse(fmt.Sprintf("Only %d status reports may be posted for a deployment protection rule", MaxGateReports))
	case in.State == nil:
		g.Reports = append(g.Reports, in.Comment)
		w.WriteHeader(http.StatusNoContent)
	default:
		g.State, g.Comment = *in.State, in.Comment
		w.WriteHeader(http.StatusNoContent)
	}
}

// pull is a pull request as GET /repos/{owner}/{repo}/pulls/{number} answers it (the
// fields a client reads).
func (s *Server) pull(repo, number string, p Pull) map[string]any {
	n, _ := strconv.Atoi(number)
	state, mergeSHA := "open", any(nil)
	if p.Merged {
		state, mergeSHA = "closed", p.MergeCommit
	}
	branch := p.Branch
	if branch == "" {
		branch = "changes"
	}
	owner, _, _ := strings.Cut(repo, "/")
	return map[string]any{
		"url": s.URL + "/repos/" + repo + "/pulls/" + number, "id": 279147437 + n, "node_id": "PR_1", "number": n,
		"html_url": "https://github.com/" + repo + "/pull/" + number, "state": state, "locked": false, "title": "Update the README",
		"user": s.user(owner), "draft": false, "merged": p.Merged, "merge_commit_sha": mergeSHA,
		"head":       map[string]any{"label": owner + ":" + branch, "ref": branch, "sha": p.Head, "user": s.user(owner)},
		"base":       map[string]any{"label": owner + ":master", "ref": "master", "sha": "f95f852bd8fca8fcc58a9a2d6c842781e32a215e", "user": s.user(owner)},
		"created_at": now(), "updated_at": now(),
	}
}

// checkRun creates a check run (id 0) or updates one: the update's fields replace the
// created ones, as GitHub keeps them, and the answer is the whole check run.
func (s *Server) checkRun(r *http.Request, id int64) map[string]any {
	var in map[string]any
	json.NewDecoder(r.Body).Decode(&in)
	repo := r.PathValue("owner") + "/" + r.PathValue("repo")
	s.mu.Lock()
	defer s.mu.Unlock()
	var c *CheckRun
	if id == 0 {
		s.nextID++
		id = s.nextID
		c = &CheckRun{ID: id, Repo: repo, body: map[string]any{}}
		s.checks = append(s.checks, c)
	} else {
		for _, k := range s.checks {
			if k.ID == id {
				c = k
			}
		}
	}
	if c == nil { // updated without being created here (a test's own id): answered as it is
		c = &CheckRun{ID: id, Repo: repo, body: map[string]any{}}
	}
	for k, v := range in {
		c.body[k] = v
	}
	c.body["id"], c.body["node_id"] = id, "CR_"+strconv.FormatInt(id, 10)
	c.body["url"] = fmt.Sprintf("%s/repos/%s/check-runs/%d", s.URL, repo, id)
	c.body["html_url"] = fmt.Sprintf("https://github.com/%s/runs/%d", repo, id)
	if c.body["status"] == nil {
		c.body["status"] = "queued"
	}
	c.Name, _ = c.body["name"].(string)
	c.HeadSHA, _ = c.body["head_sha"].(string)
	c.ExternalID, _ = c.body["external_id"].(string)
	c.Status, _ = c.body["status"].(string)
	out := make(map[string]any, len(c.body))
	for k, v := range c.body {
		out[k] = v
	}
	return out
}

// listCheckRuns is GET /repos/{owner}/{repo}/commits/{ref}/check-runs: a commit's check
// runs, newest first, by check_name, filter=latest (the default: the newest of each name)
// or all, a page of per_page (at most 100).
func (s *Server) listCheckRuns(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	repo := strings.ToLower(r.PathValue("owner") + "/" + r.PathValue("repo"))
	s.mu.Lock()
	var all []map[string]any
	seen := map[string]bool{}
	for i := len(s.checks) - 1; i >= 0; i-- {
		c := s.checks[i]
		if strings.ToLower(c.Repo) != repo || c.HeadSHA != r.PathValue("ref") || (q.Get("check_name") != "" && c.Name != q.Get("check_name")) {
			continue
		}
		if q.Get("filter") != "all" && seen[c.Name] {
			continue
		}
		seen[c.Name] = true
		all = append(all, c.body)
	}
	s.mu.Unlock()
	page := paged(all, q)
	reply(w, 200, map[string]any{"total_count": len(all), "check_runs": page})
}

// listDeployments is GET /repos/{owner}/{repo}/deployments: newest first, by sha, ref,
// task and environment, a page of per_page (at most 100).
func (s *Server) listDeployments(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	repo := strings.ToLower(r.PathValue("owner") + "/" + r.PathValue("repo"))
	s.mu.Lock()
	var all []map[string]any
	for i := len(s.depOrder) - 1; i >= 0; i-- {
		d := s.deps[s.depOrder[i]]
		if strings.ToLower(d.Repo) != repo || d.body == nil ||
			(q.Get("sha") != "" && d.Ref != q.Get("sha")) || (q.Get("ref") != "" && d.Ref != q.Get("ref")) ||
			(q.Get("task") != "" && d.Task != q.Get("task")) || (q.Get("environment") != "" && d.Environment != q.Get("environment")) {
			continue
		}
		all = append(all, d.body)
	}
	s.mu.Unlock()
	reply(w, 200, paged(all, q))
}

// paged cuts a list to the page the query asks for (per_page 30 by default, at most 100).
func paged[T any](all []T, q url.Values) []T {
	per, _ := strconv.Atoi(q.Get("per_page"))
	if per <= 0 {
		per = 30
	}
	per = min(per, 100)
	page, _ := strconv.Atoi(q.Get("page"))
	page = max(page, 1)
	from := min((page-1)*per, len(all))
	return append([]T{}, all[from:min(from+per, len(all))]...)
}

func now() string { return time.Now().UTC().Format(time.RFC3339) }

// oauthRoutes are GitHub's web flow for OAuth (authorize, then code for token) and the
// signed-in user (GET /user), refusing what GitHub refuses: an unknown client, a
// redirect_uri other than the App's registered callback, a wrong secret, a code used twice,
// for another redirect or without its PKCE verifier, a body that is not a form, a missing
// or unknown token.
func (s *Server) oauthRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /login/oauth/authorize", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		s.mu.Lock()
		who, client, callback := s.signedIn, s.OAuthClientID, s.OAuthCallbackURL
		s.mu.Unlock()
		if client == "" || q.Get("client_id") != client || callback == "" {
			reply(w, 404, map[string]any{"error": "unknown client"})
			return
		}
		// GitHub sends a wrong redirect_uri's answer to the registered callback instead.
		redirect, _ := url.Parse(callback)
		v := redirect.Query()
		switch {
		case q.Get("redirect_uri") != "" && q.Get("redirect_uri") != callback:
			v.Set("error", "redirect_uri_mismatch")
			v.Set("error_description", "The redirect_uri MUST match the registered callback URL for this application.")
		case q.Get("code_challenge") != "" && q.Get("code_challenge_method") != "S256":
			v.Set("error", "invalid_request")
			v.Set("error_description", "code_challenge_method must be S256")
		case who == nil:
			v.Set("error", "access_denied")
		default:
			code := fmt.Sprintf("code%d", s.id())
			s.mu.Lock()
			s.codes[code] = oauthGrant{user: *who, redirect: callback, challenge: q.Get("code_challenge")}
			s.mu.Unlock()
			v.Set("code", code)
		}
		if st := q.Get("state"); st != "" {
			v.Set("state", st)
		}
		redirect.RawQuery = v.Encode()
		http.Redirect(w, r, redirect.String(), http.StatusFound)
	})
	mux.HandleFunc("POST /login/oauth/access_token", func(w http.ResponseWriter, r *http.Request) {
		v := url.Values{}
		if err := r.ParseForm(); err != nil {
			v.Set("error", "invalid_request")
			v.Set("error_description", err.Error())
			oauthAnswer(w, r, 400, v)
			return
		}
		id, secret := r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
		if u, p, ok := r.BasicAuth(); ok {
			id, secret = u, p
		}
		code := r.PostForm.Get("code")
		s.mu.Lock()
		g, known := s.codes[code]
		delete(s.codes, code)
		client := id != "" && id == s.OAuthClientID && secret == s.OAuthClientSecret && s.OAuthClientSecret != ""
		s.mu.Unlock()
		switch redirect := r.PostForm.Get("redirect_uri"); {
		case !client:
			v.Set("error", "incorrect_client_credentials")
		case !known:
			v.Set("error", "bad_verification_code")
		case redirect != "" && redirect != g.redirect:
			v.Set("error", "redirect_uri_mismatch")
		case g.challenge != "" && pkceChallenge(r.PostForm.Get("code_verifier")) != g.challenge:
			v.Set("error", "bad_verification_code")
			v.Set("error_description", "The code_verifier does not match the code_challenge.")
		default:
			tok := fmt.Sprintf("gho_fake%d", s.id())
			s.mu.Lock()
			s.tokens[tok] = g.user
			s.mu.Unlock()
			v.Set("access_token", tok)
			v.Set("token_type", "bearer")
			v.Set("scope", "")
		}
		oauthAnswer(w, r, 200, v) // GitHub answers its errors 200 too
	})
	mux.HandleFunc("GET /user", func(w http.ResponseWriter, r *http.Request) {
		tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if t, ok := strings.CutPrefix(r.Header.Get("Authorization"), "token "); ok {
			tok = t
		}
		s.mu.Lock()
		u, ok := s.tokens[tok]
		s.mu.Unlock()
		if !ok {
			reply(w, 401, map[string]any{"message": "Requires authentication", "documentation_url": "https://docs.github.com/rest/users/users#get-the-authenticated-user"})
			return
		}
		me := s.user(u.Login)
		me["id"] = u.ID
		reply(w, 200, me)
	})
}

// pkceChallenge is the S256 code challenge of a PKCE verifier.
func pkceChallenge(verifier string) string {
	h := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// oauthAnswer writes v as JSON when the client accepts it, else form-encoded, as GitHub does.
func oauthAnswer(w http.ResponseWriter, r *http.Request, status int, v url.Values) {
	if strings.Contains(r.Header.Get("Accept"), "application/json") {
		m := map[string]string{}
		for k := range v {
			m[k] = v.Get(k)
		}
		reply(w, status, m)
		return
	}
	w.Header().Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	w.WriteHeader(status)
	io.WriteString(w, v.Encode())
}
