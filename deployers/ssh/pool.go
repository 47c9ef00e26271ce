package ssh

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/immunity-app/immunity/internal/wait"
)

// pool keeps one SSH client per (address, credentials), dialled on first use and again
// after it drops. A dial is shared by every caller that needs the connection meanwhile and
// belongs to none of them: it runs under the pool's own context, bounded by dialTimeout,
// and each caller waits for it only as long as its own context lets it, so a caller with a
// short deadline that gives up cuts no dial the others wait for.
type pool struct {
	dial   func(ctx context.Context, network, addr string) (net.Conn, error)
	ctx    context.Context // ends with closeAll, and with it every dial under way
	cancel context.CancelFunc
	mu     sync.Mutex
	conns  map[string]*pooled
}

type pooled struct {
	mu      sync.Mutex
	client  *ssh.Client
	dead    chan struct{} // closed when client's connection ends
	dialing *dialing      // the dial under way, nil when none
}

// dialing is one dial of a pooled connection; done is closed once client or err is set.
type dialing struct {
	done   chan struct{}
	client *ssh.Client
	err    error
}

// dialTimeout bounds one shared dial, its retries included; each caller's own context
// bounds only its wait for it.
const dialTimeout = time.Minute

func newPool(dial func(ctx context.Context, network, addr string) (net.Conn, error)) *pool {
	ctx, cancel := context.WithCancel(context.Background())
	return &pool{dial: dial, ctx: ctx, cancel: cancel, conns: map[string]*pooled{}}
}

// target is where a host's connection goes.
type target struct {
	user, hostport string
	s              Settings
}

func (t target) key() string {
	return strings.Join([]string{t.user, t.hostport, t.s.KeyFile, fmt.Sprint(t.s.Agent), t.s.AgentSocket, t.s.KnownHosts}, "\x00")
}

// parseAddress splits "user@host:port" (user and port optional).
func parseAddress(addr string, s Settings) (target, error) {
	t := target{user: s.User, s: s}
	hostport := addr
	if i := strings.LastIndex(addr, "@"); i >= 0 {
		t.user, hostport = addr[:i], addr[i+1:]
	}
	if _, _, err := net.SplitHostPort(hostport); err != nil {
		hostport = net.JoinHostPort(strings.Trim(hostport, "[]"), "22")
	}
	host, _, _ := net.SplitHostPort(hostport)
	if t.user == "" || host == "" {
		return t, fmt.Errorf("address %q: expected user@host:port (or a user in the region's ssh settings)", addr)
	}
	t.hostport = hostport
	return t, nil
}

// get returns the live client for t, dialling when there is none, or waiting for the dial
// under way. It gives up when ctx ends; the dial goes on for the others.
func (p *pool) get(ctx context.Context, t target) (*ssh.Client, error) {
	p.mu.Lock()
	e := p.conns[t.key()]
	if e == nil {
		e = &pooled{}
		p.conns[t.key()] = e
	}
	p.mu.Unlock()
	e.mu.Lock()
	if e.client != nil {
		select {
		case <-e.dead:
			e.client = nil
		default:
			c := e.client
			e.mu.Unlock()
			return c, nil
		}
	}
	d := e.dialing
	if d == nil {
		d = &dialing{done: make(chan struct{})}
		e.dialing = d
		go p.dialFor(e, d, t)
	}
	e.mu.Unlock()
	select {
	case <-d.done:
		return d.client, d.err
	case <-ctx.Done():
		return nil, fmt.Errorf("connect to %s@%s: %w", t.user, t.hostport, ctx.Err())
	}
}

// dialFor carries out dial d of e's connection under the pool's context and dialTimeout,
// and makes the client it gets e's pooled one.
func (p *pool) dialFor(e *pooled, d *dialing, t target) {
	ctx, cancel := context.WithTimeout(p.ctx, dialTimeout)
	defer cancel()
	c, err := p.dialRetry(ctx, t)
	e.mu.Lock()
	e.dialing = nil
	if err == nil && p.ctx.Err() != nil { // closeAll ran meanwhile
		c.Close()
		c, err = nil, fmt.Errorf("connect to %s@%s: %w", t.user, t.hostport, net.ErrClosed)
	}
	if err == nil {
		e.client, e.dead = c, make(chan struct{})
		go func(c *ssh.Client, dead chan struct{}) { c.Wait(); close(dead) }(c, e.dead)
		go keepalive(c, e.dead)
	}
	d.client, d.err = c, err
	close(d.done)
	e.mu.Unlock()
}

// Keepalive timing: a pooled connection that does not answer a keepalive within
// keepaliveTimeout is closed, so a silently dropped link (NAT, firewall) fails fast and is
// redialled instead of hanging the next command.
const (
	keepaliveEvery   = 15 * time.Second
	keepaliveTimeout = 10 * time.Second
)

func keepalive(c *ssh.Client, dead chan struct{}) {
	tick := time.NewTicker(keepaliveEvery)
	defer tick.Stop()
	for {
		select {
		case <-dead:
			return
		case <-tick.C:
		}
		answered := make(chan struct{})
		go func() { c.SendRequest("keepalive@openssh.com", true, nil); close(answered) }()
		select {
		case <-answered:
		case <-dead:
			return
		case <-time.After(keepaliveTimeout):
			c.Close()
			return
		}
	}
}

// drop closes c if it is still t's pooled client, so the next get dials afresh.
func (p *pool) drop(t target, c *ssh.Client) {
	p.mu.Lock()
	e := p.conns[t.key()]
	p.mu.Unlock()
	if e == nil {
		return
	}
	e.mu.Lock()
	if e.client == c {
		e.client = nil
	}
	e.mu.Unlock()
	c.Close()
}

func (p *pool) closeAll() {
	p.cancel()
	p.mu.Lock()
	conns := p.conns
	p.conns = map[string]*pooled{}
	p.mu.Unlock()
	for _, e := range conns {
		e.mu.Lock()
		if e.client != nil {
			e.client.Close()
			e.client = nil
		}
		e.mu.Unlock()
	}
}

// dialRetry dials with backoff on network errors; host key and auth errors fail at once.
func (p *pool) dialRetry(ctx context.Context, t target) (*ssh.Client, error) {
	var err error
	for i, pause := range []time.Duration{0, 200 * time.Millisecond, time.Second} {
		if err = wait.Sleep(ctx, pause); err != nil {
			break
		}
		var c *ssh.Client
		if c, err = p.dialOnce(ctx, t); err == nil {
			return c, nil
		}
		var nerr net.Error
		if !errors.As(err, &nerr) || i == 2 {
			break
		}
	}
	return nil, fmt.Errorf("connect to %s@%s: %w", t.user, t.hostport, err)
}

func (p *pool) dialOnce(ctx context.Context, t target) (*ssh.Client, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	conn, err := p.dial(ctx, "tcp", t.hostport)
	if err != nil {
		return nil, err
	}
	cfg, closeAuth, err := clientConfig(t, conn.RemoteAddr())
	if err != nil {
		conn.Close()
		return nil, err
	}
	defer closeAuth()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	c, chans, reqs, err := ssh.NewClientConn(conn, t.hostport, cfg)
	if !stop() {
		if err == nil {
			c.Close()
		}
		return nil, fmt.Errorf("ssh handshake: %w", ctx.Err())
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	return ssh.NewClient(c, chans, reqs), nil
}
