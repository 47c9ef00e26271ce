package mirror

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/immunity-app/immunity/deployers"
)

// Sidecars switches the mirrors running as sidecars (`immunity mirror`) in front of real
// hosts, through their control endpoints. It does what a Registry does for in-process
// mirrors, so the canary monitor takes either.
type Sidecars struct {
	// Control maps a production host (deployers.Host.String(), "prod3/host1", with the app
	// as prefix "papi/prod3/host1" taking precedence) to its sidecar's control base URL.
	Control map[string]string
	Token   string
	HTTP    *http.Client
}

func (s Sidecars) client(h deployers.Host) (Client, bool) {
	u, ok := s.Control[h.App+"/"+h.String()]
	if !ok {
		u, ok = s.Control[h.String()]
	}
	return Client{URL: u, Token: s.Token, HTTP: s.HTTP}, ok
}

// SetShadow turns h's sidecar on to targets.
func (s Sidecars) SetShadow(ctx context.Context, h deployers.Host, targets []string) error {
	c, ok := s.client(h)
	if !ok {
		return fmt.Errorf("mirror for %s: no sidecar control URL configured for this host", h)
	}
	if err := c.SetShadow(ctx, targets); err != nil {
		return fmt.Errorf("mirror for %s: %w", h, err)
	}
	return nil
}

// Off turns h's sidecar off; a host without a sidecar is already off.
func (s Sidecars) Off(ctx context.Context, h deployers.Host) error {
	c, ok := s.client(h)
	if !ok {
		return nil
	}
	if err := c.Off(ctx); err != nil {
		return fmt.Errorf("mirror for %s: %w", h, err)
	}
	return nil
}

// Reset turns every known sidecar off, trying them all.
func (s Sidecars) Reset(ctx context.Context) error {
	var errs []error
	for name, u := range s.Control {
		if err := (Client{URL: u, Token: s.Token, HTTP: s.HTTP}).Off(ctx); err != nil {
			errs = append(errs, fmt.Errorf("mirror for %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}
