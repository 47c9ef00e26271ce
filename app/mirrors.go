package app

import (
	"context"
	"errors"

	"github.com/immunity-app/immunity/canary/mirror"
	"github.com/immunity-app/immunity/deployers"
	"github.com/immunity-app/immunity/pipeline/config"
)

// mirrors switches the traffic mirror of a production host: its sidecar when the config
// names one (hosts.mirror), else the in-process mirror the server runs for local hosts.
type mirrors struct {
	local    *mirror.Registry
	sidecars mirror.Sidecars
}

func switchMirrors(cfg *config.Config, reg *mirror.Registry, token string) mirrors {
	m := mirrors{local: reg, sidecars: mirror.Sidecars{Control: map[string]string{}, Token: token}}
	for _, a := range cfg.Apps {
		for _, r := range a.Regions {
			for _, h := range r.Hosts {
				if h.Mirror != "" {
					m.sidecars.Control[a.Name+"/"+r.Name+"/"+h.Name] = h.Mirror
				}
			}
		}
	}
	return m
}

func (m mirrors) hasSidecar(h deployers.Host) bool {
	_, ok := m.sidecars.Control[h.App+"/"+h.String()]
	return ok
}

// SetShadow turns h's mirror on, copying safe requests to targets.
func (m mirrors) SetShadow(ctx context.Context, h deployers.Host, targets []string) error {
	if m.hasSidecar(h) {
		return m.sidecars.SetShadow(ctx, h, targets)
	}
	return m.local.SetShadow(ctx, h, targets)
}

// Off turns h's mirror off.
func (m mirrors) Off(ctx context.Context, h deployers.Host) error {
	if m.hasSidecar(h) {
		return m.sidecars.Off(ctx, h)
	}
	return m.local.Off(ctx, h)
}

// Reset turns every mirror off (at startup: a window cut by a crash left its mirror on).
func (m mirrors) Reset(ctx context.Context) error {
	return errors.Join(m.local.Reset(ctx), m.sidecars.Reset(ctx))
}
