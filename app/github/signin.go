package github

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	gh "github.com/google/go-github/v60/github"
	"golang.org/x/oauth2"

	"github.com/immunity-app/immunity/pipeline/config"
)

// SignIn is "Sign in with GitHub" for the dashboard: the App's OAuth client in GitHub's
// web application flow (authorize with a state and a PKCE challenge, code for a user
// token), then GET /user, whose id is the person's verified identity.
type SignIn struct {
	oauth oauth2.Config
	api   *url.URL
	hc    *http.Client
}

// NewSignIn makes the sign-in client of the App's OAuth client; callback is the
// dashboard's /signin/github/callback, as registered in the App (its manifest's
// callback_urls).
func NewSignIn(cfg config.GitHubConfig, callback string, rt http.RoundTripper) (*SignIn, error) {
	secret, err := cfg.OAuthSecret()
	if err != nil {
		return nil, fmt.Errorf("github sign-in: %w", err)
	}
	if cfg.ClientID == "" || strings.TrimSpace(secret) == "" {
		return nil, fmt.Errorf("github sign-in: expected github.client_id and github.client_secret (or client_secret_file)")
	}
	base, err := url.Parse(cfg.BaseURL())
	if err != nil {
		return nil, fmt.Errorf("github sign-in: api url %q: %w", cfg.BaseURL(), err)
	}
	web := cfg.SignInURL()
	return &SignIn{
		oauth: oauth2.Config{ClientID: cfg.ClientID, ClientSecret: strings.TrimSpace(secret), RedirectURL: callback,
			Endpoint: oauth2.Endpoint{AuthURL: web + "login/oauth/authorize", TokenURL: web + "login/oauth/access_token", AuthStyle: oauth2.AuthStyleInParams}},
		api: base,
		hc:  &http.Client{Transport: rt, Timeout: 20 * time.Second},
	}, nil
}

// AuthCodeURL is GitHub's authorize page for this sign-in: it sends the browser back to
// the callback with state and a code that only verifier can redeem.
func (s *SignIn) AuthCodeURL(state, verifier string) string {
	return s.oauth.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier))
}

// User redeems the code GitHub sent back for a user token and asks GitHub whose it is.
func (s *SignIn) User(ctx context.Context, code, verifier string) (login string, id int64, err error) {
	ctx = context.WithValue(ctx, oauth2.HTTPClient, s.hc)
	tok, err := s.oauth.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		return "", 0, fmt.Errorf("github sign-in: redeem the code: %w", err)
	}
	cl := gh.NewClient(s.oauth.Client(ctx, tok))
	cl.BaseURL = s.api
	u, _, err := cl.Users.Get(ctx, "")
	if err != nil {
		return "", 0, fmt.Errorf("github sign-in: who signed in: %w", err)
	}
	if u.GetID() == 0 || u.GetLogin() == "" {
		return "", 0, fmt.Errorf("github sign-in: GitHub answered a user without an id or login")
	}
	return u.GetLogin(), u.GetID(), nil
}
