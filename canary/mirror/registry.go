package mirror

import (
	"context"
	"fmt"
	"net"
	"sync"

	"github.com/immunity-app/immunity/deployers"
)

// Registry runs one proxy per production host inside the server (the local deployer's
// way, and the demo's): production traffic is sent to each proxy's URL instead of the
// host's, and the canary monitor switches mirroring through the registry by host.
type Registry struct {
	opts    Options
	mu      sync.Mutex
	proxies map[string]*served
}

type served struct {
	p   *Proxy
	srv interface{ Close() error }
}

// NewRegistry returns an empty registry whose proxies use o.
func NewRegistry(o Options) *Registry { return &Registry{opts: o, proxies: map[string]*served{}} }

func key(h deployers.Host) string { return h.App + "/" + h.Region + "/" + h.Name }

// Start serves a proxy in front of h.URL on listen (e.g. "127.0.0.1:0") until ctx ends
// or Close, and registers it under h's app, region and name. Starting a host twice
// returns the running proxy.
func (r *Registry) Start(ctx context.Context, h deployers.Host, listen string) (*Proxy, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s, ok := r.proxies[key(h)]; ok {
		return s.p, nil
	}
	p, err := New(h.URL, r.opts)
	if err != nil {
		return nil, fmt.Errorf("mirror for %s: %w", h, err)
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("mirror for %s: listen %s: %w", h, listen, err)
	}
	u := "http://" + ln.Addr().String()
	p.url.Store(&u)
	srv := p.Serve(ln, nil)
	r.proxies[key(h)] = &served{p: p, srv: srv}
	go func() {
		<-ctx.Done()
		r.stop(h)
	}()
	return p, nil
}

// Lookup returns h's proxy, or nil.
func (r *Registry) Lookup(h deployers.Host) *Proxy {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s, ok := r.proxies[key(h)]; ok {
		return s.p
	}
	return nil
}

// SetShadow turns h's mirror on to targets.
func (r *Registry) SetShadow(ctx context.Context, h deployers.Host, targets []string) error {
	p := r.Lookup(h)
	if p == nil {
		return fmt.Errorf("mirror for %s: no mirror runs in front of this host", h)
	}
	return p.SetShadow(targets)
}

// Off turns h's mirror off; a host without a mirror is already off.
func (r *Registry) Off(ctx context.Context, h deployers.Host) error {
	if p := r.Lookup(h); p != nil {
		p.Off()
	}
	return nil
}

// Reset turns every mirror off (at startup, after a crash mid-window).
func (r *Registry) Reset(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.proxies {
		s.p.Off()
	}
	return nil
}

func (r *Registry) stop(h deployers.Host) {
	r.mu.Lock()
	s, ok := r.proxies[key(h)]
	delete(r.proxies, key(h))
	r.mu.Unlock()
	if ok {
		s.srv.Close()
		s.p.Close()
	}
}

// Close stops every proxy.
func (r *Registry) Close() error {
	r.mu.Lock()
	all := r.proxies
	r.proxies = map[string]*served{}
	r.mu.Unlock()
	for _, s := range all {
		s.srv.Close()
		s.p.Close()
	}
	return nil
}

// Stats returns every proxy's counters by "app/region/host" (for the dashboard).
func (r *Registry) Stats() map[string]Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]Stats, len(r.proxies))
	for k, s := range r.proxies {
		out[k] = s.p.Stats()
	}
	return out
}
