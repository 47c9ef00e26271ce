package app

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/immunity-app/immunity/pipeline"
	"github.com/immunity-app/immunity/pipeline/config"
	"github.com/immunity-app/immunity/store"
)

// Who may call the API, and as whom. Nothing is trusted for where it comes from: a
// caller is the server's own OS user on the local socket (peer credentials checked), the
// owner of a personal API token presented as a bearer token, or, on the dashboard, a
// signed-in session. Anyone else is anonymous: they may read, never change.

// Token roles: an admin is the server's operator (every action of every app, forcing
// included, and managing tokens); a member is matched by the token's name in the
// apps' access grants (`tokens: [NAME]`).
const (
	RoleAdmin  = "admin"
	RoleMember = "member"
)

// tokenPrefix marks Immunity's tokens, so that a leaked one is recognisable.
const tokenPrefix = "imm_"

// tokenName is the form of a token's name, the one its grants (`tokens:`) are checked against.
var tokenName = config.TokenName

// hashToken is how a token (or a session cookie) is kept: its SHA-256. Both are 32
// random bytes, so a plain hash cannot be guessed back.
func hashToken(tok string) string {
	h := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(h[:])
}

// randomToken is 32 random bytes, URL-safe.
func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// CreateToken makes a personal API token and returns its value, which is shown once and
// never stored.
func CreateToken(ctx context.Context, st *store.Store, name, role, by string) (string, error) {
	if !tokenName.MatchString(name) {
		return "", fmt.Errorf("token name %q: expected 1-64 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit", name)
	}
	switch role {
	case "":
		role = RoleMember
	case RoleAdmin, RoleMember:
	default:
		return "", fmt.Errorf("token role %q: expected %s or %s", role, RoleMember, RoleAdmin)
	}
	tok := tokenPrefix + randomToken()
	if err := st.CreateToken(ctx, store.Token{Hash: hashToken(tok), Name: name, Role: role, CreatedBy: by}); err != nil {
		return "", err
	}
	return tok, nil
}

// tokenActor is the identity of a token in force.
func tokenActor(t store.Token, via string) pipeline.Actor {
	return pipeline.Actor{ID: "token:" + t.Name, Name: t.Name, Via: via, Token: t.Name, Admin: t.Role == RoleAdmin}
}

// errBadToken is a bearer token that is not one in force.
var errBadToken = errors.New("the bearer token is not a token in force (revoked, mistyped, or of another server)")

// caller is the verified identity of an API request: the local socket's user, or the
// owner of its bearer token; ok is false for an anonymous caller. A bearer token that is
// not in force is an error, not anonymity.
func (s *Server) caller(c *gin.Context) (pipeline.Actor, bool, error) {
	if a, ok := c.Request.Context().Value(localPeer{}).(pipeline.Actor); ok {
		return a, true, nil
	}
	auth := c.GetHeader("Authorization")
	if auth == "" {
		return pipeline.Actor{}, false, nil
	}
	tok, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok || tok == "" {
		return pipeline.Actor{}, false, errors.New("expected the header Authorization: Bearer TOKEN")
	}
	t, err := s.eng.Store().TokenByHash(c.Request.Context(), hashToken(strings.TrimSpace(tok)))
	if errors.Is(err, store.ErrNotFound) {
		return pipeline.Actor{}, false, errBadToken
	}
	if err != nil {
		return pipeline.Actor{}, false, fmt.Errorf("check the bearer token: %w", err)
	}
	return tokenActor(t, "api"), true, nil
}

// requireJSON refuses a state-changing API request that is not application/json: a
// browser sends text/plain or a form across origins without asking, JSON it must ask
// for (CORS), and this server never says yes.
func requireJSON(c *gin.Context) bool {
	ct := c.ContentType()
	if ct == "application/json" {
		return true
	}
	c.AbortWithStatusJSON(http.StatusUnsupportedMediaType, commandReply{Text: fmt.Sprintf("expected Content-Type: application/json, got %q", ct)})
	return false
}

type tokenRequest struct {
	Name string `json:"name"`
	Role string `json:"role"`
}

type tokenView struct {
	Name      string `json:"name"`
	Role      string `json:"role"`
	CreatedBy string `json:"created_by"`
	Created   string `json:"created"`
	LastUsed  string `json:"last_used,omitempty"`
	Revoked   string `json:"revoked,omitempty"`
	Token     string `json:"token,omitempty"` // only in the answer that made it
}

// admin answers the request as refused unless its caller is an admin.
func (s *Server) admin(c *gin.Context) (pipeline.Actor, bool) {
	who, ok, err := s.caller(c)
	switch {
	case err != nil:
		c.AbortWithStatusJSON(http.StatusUnauthorized, gin.H{"error": err.Error()})
		return who, false
	case !ok || !who.Admin:
		c.AbortWithStatusJSON(http.StatusForbidden, gin.H{"error": "managing tokens needs the server's local socket or an admin token"})
		return who, false
	}
	return who, true
}

func (s *Server) apiTokens(c *gin.Context) {
	if _, ok := s.admin(c); !ok {
		return
	}
	ts, err := s.eng.Store().Tokens(c.Request.Context())
	if err != nil {
		c.JSON(http.StatusInternalServerError, gin.H{"error": err.Error()})
		return
	}
	out := []tokenView{}
	for _, t := range ts {
		v := tokenView{Name: t.Name, Role: t.Role, CreatedBy: t.CreatedBy, Created: isoTime(t.Created), LastUsed: isoTime(t.LastUsed), Revoked: isoTime(t.Revoked)}
		out = append(out, v)
	}
	c.JSON(http.StatusOK, out)
}

func (s *Server) apiCreateToken(c *gin.Context) {
	if !requireJSON(c) {
		return
	}
	who, ok := s.admin(c)
	if !ok {
		return
	}
	var req tokenRequest
	if err := c.ShouldBindJSON(&req); err != nil {
		c.JSON(http.StatusBadRequest, gin.H{"error": `expected a JSON body {"name": "ada", "role": "member"}`})
		return
	}
	var tok string
	err := s.audited(c.Request.Context(), who, "token create", req.Name+" "+req.Role, func(ctx context.Context) (err error) {
		tok, err = CreateToken(ctx, s.eng.Store(), req.Name, req.Role, who.Key())
		return err
	})
	if err != nil {
		code := http.StatusBadRequest
		if errors.Is(err, store.ErrExists) {
			code = http.StatusConflict
		}
		c.JSON(code, gin.H{"error": err.Error()})
		return
	}
	if req.Role == "" {
		req.Role = RoleMember
	}
	c.JSON(http.StatusOK, tokenView{Name: req.Name, Role: req.Role, CreatedBy: who.Key(), Token: tok})
}

func (s *Server) apiRevokeToken(c *gin.Context) {
	who, ok := s.admin(c)
	if !ok {
		return
	}
	name := c.Param("name")
	err := s.audited(c.Request.Context(), who, "token revoke", name, func(ctx context.Context) error {
		return s.eng.Store().RevokeToken(ctx, name)
	})
	if err != nil {
		code := http.StatusInternalServerError
		if errors.Is(err, store.ErrNotFound) {
			code = http.StatusNotFound
		}
		c.JSON(code, gin.H{"error": err.Error()})
		return
	}
	c.JSON(http.StatusOK, gin.H{"revoked": name})
}

// audited runs change, a store write of who's action, with its audit entry written in the
// change's own transaction (store.AuditNote): a token is never made or revoked, nor a
// session begun or ended, without the entry saying who did it. A change that wrote none
// (it failed) is audited on its own.
func (s *Server) audited(ctx context.Context, who pipeline.Actor, action, args string, change func(ctx context.Context) error) error {
	n := store.NewAuditNote(store.Audit{Actor: who.Name, ActorID: who.Key(), Via: who.Via, Action: action, Args: args, Outcome: "ok"})
	err := change(n.With(ctx))
	if !n.Written() {
		s.eng.Audit(ctx, who, action, "", "", "", args, outcomeOf(err), errText(err))
	}
	return err
}

func outcomeOf(err error) string {
	if err != nil {
		return "failed"
	}
	return "ok"
}

func errText(err error) string {
	if err != nil {
		return err.Error()
	}
	return ""
}
