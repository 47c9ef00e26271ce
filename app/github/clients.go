package github

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/bradleyfalzon/ghinstallation/v2"
	gh "github.com/google/go-github/v60/github"

	"github.com/immunity-app/immunity/pipeline/config"
)

// Clients hands out GitHub API clients authenticated as an installation of the App: one
// cached ghinstallation transport per installation (it refreshes its token itself), all
// over one retrying transport. Which installation serves a repo is remembered in
// github_installations (from webhooks); a repo not seen yet is looked up once through
// the App's JWT.
type Clients struct {
	appID   int64
	key     []byte
	base    *url.URL
	tr      http.RoundTripper // retrying transport under every client
	st      installations
	log     *slog.Logger
	appTr   *ghinstallation.AppsTransport
	mu      sync.Mutex
	byInst  map[int64]*gh.Client
	teams   map[string]teamAnswer
	timeout time.Duration
}

// installations remembers which installation serves which repo (*store.Store does).
type installations interface {
	InstallationFor(ctx context.Context, repo string) (int64, error)
	RememberInstallation(ctx context.Context, repo string, id int64, account string) error
}

// NewClients makes the client factory of a configured App; st remembers installations.
func NewClients(cfg config.GitHubConfig, st installations, logger *slog.Logger, opts ...Option) (*Clients, error) {
	if logger == nil {
		logger = slog.Default()
	}
	if cfg.AppID == 0 {
		return nil, errors.New("github clients: no app id configured")
	}
	key, err := cfg.Key()
	if err != nil {
		return nil, fmt.Errorf("github clients: %w", err)
	}
	base, err := url.Parse(cfg.BaseURL())
	if err != nil {
		return nil, fmt.Errorf("github clients: api url %q: %w", cfg.BaseURL(), err)
	}
	o := optionsOf(opts)
	tr := newRetryTransport(o.obs.Transport("github", http.DefaultTransport), logger)
	tr.obs = o.obs
	atr, err := ghinstallation.NewAppsTransport(tr, cfg.AppID, key)
	if err != nil {
		return nil, fmt.Errorf("github clients: app %d private key: %w", cfg.AppID, err)
	}
	atr.BaseURL = strings.TrimRight(base.String(), "/")
	return &Clients{appID: cfg.AppID, key: key, base: base, tr: tr, st: st, log: logger, appTr: atr,
		byInst: map[int64]*gh.Client{}, teams: map[string]teamAnswer{}, timeout: 30 * time.Second}, nil
}

// newClient makes a go-github client over rt pointed at the configured API.
func (c *Clients) newClient(rt http.RoundTripper) *gh.Client {
	cl := gh.NewClient(&http.Client{Transport: rt, Timeout: c.timeout})
	cl.BaseURL = c.base
	cl.UploadURL = c.base
	return cl
}

// App returns a client authenticated as the App itself (JWT): installation lookups.
func (c *Clients) App() *gh.Client { return c.newClient(c.appTr) }

// ForInstallation returns the cached client of one installation.
func (c *Clients) ForInstallation(id int64) *gh.Client {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl, ok := c.byInst[id]; ok {
		return cl
	}
	itr := ghinstallation.NewFromAppsTransport(c.appTr, id)
	itr.BaseURL = c.appTr.BaseURL
	emptyTokenOptions(itr)
	cl := c.newClient(itr)
	c.byInst[id] = cl
	return cl
}

// ForRepo returns a client of the installation that serves repo ("owner/name").
func (c *Clients) ForRepo(ctx context.Context, repo string) (*gh.Client, error) {
	id, err := c.st.InstallationFor(ctx, repo)
	if err != nil {
		return nil, err
	}
	if id == 0 {
		owner, name, ok := splitRepo(repo)
		if !ok {
			return nil, fmt.Errorf("github client for %q: expected owner/name", repo)
		}
		inst, _, err := c.App().Apps.FindRepositoryInstallation(ctx, owner, name)
		if err != nil {
			return nil, fmt.Errorf("find the installation of the GitHub App on %s: %w", repo, err)
		}
		id = inst.GetID()
		if err := c.st.RememberInstallation(ctx, repo, id, inst.GetAccount().GetLogin()); err != nil {
			c.log.Warn("remember github installation", "repo", repo, "err", err)
		}
	}
	return c.ForInstallation(id), nil
}

func splitRepo(full string) (owner, name string, ok bool) {
	owner, name, ok = strings.Cut(full, "/")
	return owner, name, ok && owner != "" && name != "" && !strings.Contains(name, "/")
}

// emptyTokenOptions makes ghinstallation ask for tokens with an empty object rather than
// the JSON null it sends by default: GitHub's description says the body is an object (the
// contract test holds us to it). The field's type is from ghinstallation's own go-github
// major, which our code does not import, so a zero value is made from the field's type.
func emptyTokenOptions(itr *ghinstallation.Transport) {
	f := reflect.ValueOf(itr).Elem().FieldByName("InstallationTokenOptions")
	f.Set(reflect.New(f.Type().Elem()))
}
