package app

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/gin-gonic/gin"

	"github.com/immunity-app/immunity/app/github"
	"github.com/immunity-app/immunity/pipeline"
	"github.com/immunity-app/immunity/pipeline/config"
	"github.com/immunity-app/immunity/store"
)

// Dashboard sign-in. A person signs in with GitHub (the App's OAuth client; the identity
// is the GitHub user id, the login is for display) or, on a standalone install, with a
// personal API token (`immunity token create NAME`). Either way the server keeps a session
// in the store, keyed by a SHA-256 of the cookie's random value, which expires after
// sessionTTL and is deleted on sign-out (or when its token is revoked). The cookie is
// HttpOnly, SameSite=Lax, and Secure when the server's URL is https; behind https the
// session cookie is named with the __Host- prefix (no Domain, Path=/: no other host or
// path can set or shadow it) and the sign-in cookies with __Secure-. Every form a session
// posts carries the session's CSRF token, and crossOrigin refuses posts from other origins
// before any handler runs. Views with logs or test output need a signed-in caller unless
// every listener of the server is on loopback and its server.url (if any) names this
// machine (the demo).

const (
	sessionCookie = "immunity_session"
	signinCookie  = "immunity_signin" // the token form's CSRF token, before there is a session
	oauthCookie   = "immunity_oauth"  // state, PKCE verifier and return path of a GitHub sign-in
	sessionTTL    = 12 * time.Hour
)

// githubSignIn is the GitHub App's OAuth client (github.SignIn).
type githubSignIn interface {
	AuthCodeURL(state, verifier string) string
	User(ctx context.Context, code, verifier string) (login string, id int64, err error)
}

// auth is how the dashboard knows people.
type auth struct {
	github  githubSignIn // nil: no "Sign in with GitHub"
	secure  bool         // cookies only over https (server.url is https)
	ttl     time.Duration
	private atomic.Bool // logs, test output and the audit need sign-in: a listener is not on loopback
}

// configureSignIn sets sign-in up from the config: GitHub's when the App's OAuth client is
// configured, Secure cookies when the server's URL is https.
func (s *Server) configureSignIn(cfg *config.Config, rt http.RoundTripper) error {
	base := strings.TrimRight(cfg.Server.URL, "/")
	if base == "" {
		base = "http://" + cfg.Server.Listen
	}
	s.auth.secure = strings.HasPrefix(base, "https://")
	if cfg.Server.URL != "" && !loopbackURL(cfg.Server.URL) {
		// People reach the dashboard beyond this machine (a reverse proxy in front of a
		// loopback listener, most often): the views with logs need sign-in, as when the
		// server listens beyond loopback itself.
		s.auth.private.Store(true)
	}
	if !cfg.GitHub.SignIn() {
		return nil
	}
	gh, err := github.NewSignIn(cfg.GitHub, base+"/signin/github/callback", rt)
	if err != nil {
		return err
	}
	s.auth.github = gh
	return nil
}

// viewer is who looks at a page: a signed-in person, with the CSRF token their forms
// carry, or nobody.
type viewer struct {
	Actor    pipeline.Actor
	SignedIn bool
	CSRF     string
	GitHub   bool // "Sign in with GitHub" is offered
}

// viewerOf is the viewer of a page's data (the header shows it); data without one is an
// anonymous page.
func viewerOf(data any) viewer {
	if v, ok := data.(interface{ viewing() viewer }); ok {
		return v.viewing()
	}
	return viewer{}
}

// session is the request's signed-in session, read once per request; ok is false for an
// anonymous caller (no cookie, or one of a session that ended or expired).
func (s *Server) session(c *gin.Context) (store.Session, pipeline.Actor, bool) {
	type cached struct {
		se store.Session
		a  pipeline.Actor
		ok bool
	}
	if v, ok := c.Get("session"); ok {
		x := v.(cached)
		return x.se, x.a, x.ok
	}
	var x cached
	if ck, err := s.cookie(c, sessionCookie); err == nil && ck != "" {
		se, err := s.eng.Store().SessionByHash(c.Request.Context(), hashToken(ck))
		switch {
		case err == nil:
			if json.Unmarshal([]byte(se.Actor), &x.a) == nil && x.a.ID != "" {
				x.se, x.ok = se, true
			}
		case !errors.Is(err, store.ErrNotFound):
			s.log.Warn("dashboard session", "err", err)
		}
	}
	c.Set("session", x)
	return x.se, x.a, x.ok
}

// viewer is the request's viewer.
func (s *Server) viewer(c *gin.Context) viewer {
	v := viewer{GitHub: s.auth.github != nil}
	if se, a, ok := s.session(c); ok {
		v.Actor, v.SignedIn, v.CSRF = a, true, se.CSRF
	}
	return v
}

// form checks a form post of a signed-in session: its CSRF token must be the session's.
// It answers the refusal itself and reports false.
func (s *Server) form(c *gin.Context) (pipeline.Actor, bool) {
	se, a, ok := s.session(c)
	if !ok {
		s.message(c, http.StatusUnauthorized, "Sign in first", "This needs a signed-in session: sign in, then try again. Nothing was done.")
		return a, false
	}
	if !sameSecret(c.PostForm("csrf"), se.CSRF) {
		s.message(c, http.StatusForbidden, "Refused", "The form's CSRF token is missing or not this session's: reload the page and try again. Nothing was done.")
		return a, false
	}
	return a, true
}

func sameSecret(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// private lets a request through to a view with logs, test output or who did what (the
// audit, a region's page) when the server is
// only on loopback, or the caller is signed in (a session, a token, the local socket);
// anyone else is sent to sign in (pages) or answered 401 (the API).
func (s *Server) private(c *gin.Context) {
	if s.mayReadPrivate(c) {
		return
	}
	if strings.HasPrefix(c.Request.URL.Path, "/api/") {
		c.AbortWithStatusJSON(http.StatusUnauthorized, gin.H{"error": "this shows logs, test output or the audit: send a personal token (Authorization: Bearer TOKEN)"})
		return
	}
	c.Redirect(http.StatusSeeOther, "/signin?next="+url.QueryEscape(c.Request.URL.RequestURI()))
	c.Abort()
}

// mayReadPrivate reports whether the request may see logs, test output and who did what:
// the server is only on loopback, or the caller is signed in (a session, a token, the
// local socket).
func (s *Server) mayReadPrivate(c *gin.Context) bool {
	if !s.auth.private.Load() {
		return true
	}
	if _, _, ok := s.session(c); ok {
		return true
	}
	_, ok, err := s.caller(c)
	return ok && err == nil
}

// operatorOnly lets a request through to what only the server's operator may do from a
// browser, the GitHub App's setup (it writes the App's credentials into data_dir): on
// loopback only, anyone on the machine, as for the other views; beyond it, an admin (a
// session or bearer of an admin token, or the local socket). Others are sent to sign in,
// or refused when signed in or posting.
func (s *Server) operatorOnly(c *gin.Context) bool {
	if !s.auth.private.Load() {
		return true
	}
	_, a, signedIn := s.session(c)
	if signedIn && a.Admin {
		return true
	}
	if who, ok, err := s.caller(c); ok && err == nil && who.Admin {
		return true
	}
	if signedIn || c.Request.Method != http.MethodGet {
		s.message(c, http.StatusForbidden, "Refused", "Setting up the GitHub App needs the server's operator: sign in with an admin token (immunity token create NAME --role admin, on the server). Nothing was done.")
		return false
	}
	c.Redirect(http.StatusSeeOther, "/signin?next="+url.QueryEscape(c.Request.URL.RequestURI()))
	c.Abort()
	return false
}

// loopbackURL reports whether a URL names this machine only (localhost or a loopback
// address).
func loopbackURL(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	host := u.Hostname()
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// notePrivate marks the views with logs, test output or the audit as needing sign-in when ln is
// reachable from beyond this machine (a TCP listener not on loopback).
func (s *Server) notePrivate(ln net.Listener) {
	if a, ok := ln.Addr().(*net.TCPAddr); ok && !a.IP.IsLoopback() {
		s.auth.private.Store(true)
	}
}

// signInRoutes are the sign-in pages: GET /signin, the token form, GitHub's round trip and
// sign-out.
func (s *Server) signInRoutes(r gin.IRouter) {
	r.GET("/signin", s.signInPage)
	r.POST("/signin/token", s.signInToken)
	r.GET("/signin/github", s.signInGitHub)
	r.GET("/signin/github/callback", s.signInGitHubCallback)
	r.POST("/signout", s.signOut)
}

type signInView struct {
	Title, Next, CSRF, Error string
	GitHub                   bool
}

func (s *Server) signInPage(c *gin.Context) {
	csrf := randomToken()
	s.setCookie(c, signinCookie, csrf, "/signin", 10*time.Minute)
	render(c, "signin", signInView{Title: "sign in", Next: localPath(c.Query("next")), CSRF: csrf, GitHub: s.auth.github != nil})
}

// signInToken signs in with a personal API token in force (a standalone install's admin,
// or anyone holding a token): the session is the token's identity, with what the token may
// do through the API (a member's grants, an admin's everything), and ends when it is revoked.
func (s *Server) signInToken(c *gin.Context) {
	ck, _ := s.cookie(c, signinCookie)
	if !sameSecret(c.PostForm("csrf"), ck) {
		s.message(c, http.StatusForbidden, "Refused", "The sign-in form's CSRF token is missing or wrong: open the sign-in page again.")
		return
	}
	next := localPath(c.PostForm("next"))
	t, err := s.eng.Store().TokenByHash(c.Request.Context(), hashToken(strings.TrimSpace(c.PostForm("token"))))
	if err != nil {
		msg := errBadToken.Error()
		if !errors.Is(err, store.ErrNotFound) {
			msg = "could not check the token: " + err.Error()
		}
		renderStatus(c, http.StatusUnauthorized, "signin", signInView{Title: "sign in", Next: next, CSRF: ck, GitHub: s.auth.github != nil, Error: msg})
		return
	}
	s.startSession(c, tokenActor(t, "dashboard"), t.Name, next)
}

// signInGitHub sends the browser to GitHub's authorize page with a fresh state and PKCE
// verifier, kept in a short-lived cookie that only this server reads.
func (s *Server) signInGitHub(c *gin.Context) {
	if s.auth.github == nil {
		s.message(c, http.StatusNotFound, "No GitHub sign-in", "This server has no GitHub App OAuth client (github.client_id and github.client_secret): sign in with a personal token.")
		return
	}
	state, verifier := randomToken(), randomToken()
	next := base64.RawURLEncoding.EncodeToString([]byte(localPath(c.Query("next"))))
	s.setCookie(c, oauthCookie, state+"."+verifier+"."+next, "/signin", 10*time.Minute)
	c.Redirect(http.StatusFound, s.auth.github.AuthCodeURL(state, verifier))
}

// signInGitHubCallback is where GitHub sends the browser back: the state must be the one
// this browser's cookie holds, then the code is redeemed and GitHub says who signed in.
func (s *Server) signInGitHubCallback(c *gin.Context) {
	if s.auth.github == nil {
		s.message(c, http.StatusNotFound, "No GitHub sign-in", "This server has no GitHub App OAuth client.")
		return
	}
	ck, _ := s.cookie(c, oauthCookie)
	s.setCookie(c, oauthCookie, "", "/signin", -1) // a state is used once
	parts := strings.Split(ck, ".")
	if len(parts) != 3 || !sameSecret(c.Query("state"), parts[0]) {
		s.message(c, http.StatusBadRequest, "Sign-in refused", "The sign-in's state does not match this browser's: start again from the sign-in page.")
		return
	}
	if e := c.Query("error"); e != "" {
		s.message(c, http.StatusUnauthorized, "Sign-in refused", fmt.Sprintf("GitHub answered %s: %s", e, c.Query("error_description")))
		return
	}
	login, id, err := s.auth.github.User(c.Request.Context(), c.Query("code"), parts[1])
	if err != nil {
		s.log.Warn("github sign-in", "err", err)
		s.message(c, http.StatusBadGateway, "Sign-in failed", err.Error())
		return
	}
	next, _ := base64.RawURLEncoding.DecodeString(parts[2])
	a := pipeline.Actor{ID: fmt.Sprintf("github:%d", id), Name: login, Via: "dashboard", GitHubLogin: login, GitHubID: id}
	s.startSession(c, a, "", localPath(string(next)))
}

// startSession records a new session for a and gives the browser its cookie: a new
// random value at every sign-in, so that no one can plant one beforehand.
func (s *Server) startSession(c *gin.Context, a pipeline.Actor, token, next string) {
	a.Via = "dashboard"
	who, _ := json.Marshal(a)
	ck, ttl := randomToken(), s.auth.ttl
	if ttl <= 0 {
		ttl = sessionTTL
	}
	err := s.audited(c.Request.Context(), a, "sign in", "", func(ctx context.Context) error {
		return s.eng.Store().PutSession(ctx, store.Session{Hash: hashToken(ck), Actor: string(who), Token: token, CSRF: randomToken(), Expires: time.Now().Add(ttl)})
	})
	if err != nil {
		s.message(c, http.StatusInternalServerError, "Sign-in failed", "could not record the session: "+err.Error())
		return
	}
	s.setCookie(c, signinCookie, "", "/signin", -1)
	s.setCookie(c, sessionCookie, ck, "/", ttl)
	c.Redirect(http.StatusSeeOther, next)
}

// signOut deletes the session: its cookie, replayed, no longer signs anyone in.
func (s *Server) signOut(c *gin.Context) {
	a, ok := s.form(c)
	if !ok {
		return
	}
	se, _, _ := s.session(c)
	err := s.audited(c.Request.Context(), a, "sign out", "", func(ctx context.Context) error {
		return s.eng.Store().DeleteSession(ctx, se.Hash)
	})
	if err != nil {
		s.message(c, http.StatusInternalServerError, "Sign-out failed", err.Error())
		return
	}
	s.setCookie(c, sessionCookie, "", "/", -1)
	c.Redirect(http.StatusSeeOther, "/")
}

// setCookie sets (or, with a negative age, deletes) one of the dashboard's cookies:
// HttpOnly, SameSite=Lax (GitHub's redirect back is a top-level navigation, which Lax
// lets through), Secure behind https.
func (s *Server) setCookie(c *gin.Context, name, value, path string, age time.Duration) {
	ck := &http.Cookie{Name: s.cookieName(name), Value: value, Path: path, HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: s.auth.secure}
	if age < 0 {
		ck.MaxAge = -1
	} else {
		ck.MaxAge = int(age / time.Second)
	}
	http.SetCookie(c.Writer, ck)
}

// cookieName is the name a cookie goes by: behind https the session cookie (Path=/) has
// the __Host- prefix and the sign-in ones (Path=/signin) __Secure-, which browsers only
// accept from a secure origin (and, for __Host-, without a Domain); on plain http (the
// loopback demo) the plain name.
func (s *Server) cookieName(name string) string {
	switch {
	case !s.auth.secure:
		return name
	case name == sessionCookie:
		return "__Host-" + name
	default:
		return "__Secure-" + name
	}
}

// cookie reads one of the dashboard's cookies by the name it goes by.
func (s *Server) cookie(c *gin.Context, name string) (string, error) {
	return c.Cookie(s.cookieName(name))
}

// localPath is a return path after sign-in: a path of this server, never another site.
// Browsers drop tabs and newlines from a URL and read a backslash as a slash, so a path
// holding any control character or backslash ("/\t/evil.example" is "//evil.example") is
// refused, not only one that starts with "//".
func localPath(p string) string {
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.ContainsRune(p, '\\') || strings.ContainsFunc(p, unicode.IsControl) {
		return "/"
	}
	return p
}

type messageView struct {
	Title, Heading, Text string
}

func (v homeView) viewing() viewer { return v.Me }
func (v runView) viewing() viewer  { return v.Me }

// message answers with a short page: a refusal or a failure, said in words.
func (s *Server) message(c *gin.Context, status int, heading, text string) {
	renderStatus(c, status, "message", messageView{Title: strings.ToLower(heading), Heading: heading, Text: text})
	c.Abort()
}
