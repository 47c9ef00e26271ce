// Package mirror is the traffic mirror: a reverse proxy in front of one production host.
//
// Every request goes to the primary and its response is streamed back. When shadow
// targets are set, safe requests (GET and HEAD by default) are also copied to one shadow
// target (round robin over the targets) once the primary has answered: the copy is put
// on a bounded queue with a non-blocking send (dropped and counted when the queue is
// full) and sent by a small pool of workers over keep-alive connections with a timeout
// by a small HTTP/1.1 client of the package's own (client.go). A shadow failing at the
// transport level (dead, refusing, timing out) several times in a row rests for a
// second, its copies shed and counted (see breaker.go). So the primary never waits for a
// shadow, whether it is fast, slow or dead, and a dead one costs next to nothing.
//
// The queue bound is also what a slow canary sees: Workers copies are in flight at
// once, so a shadow answering in L seconds receives at most Workers/L copies a second
// (8 workers and a 200 ms canary: 40 a second) and the rest are dropped and counted. The
// canary is judged on that sample of production's traffic, never slowed into a backlog
// that would make its latency a queue's.
//
// The proxy itself is served by fasthttp (server and primary client): a sidecar sits in
// front of every production request, and net/http's server and Transport cost about
// twice nginx's CPU per proxied request (goroutine hand-offs, a background read and
// allocations per request). The primary's request keeps its Host, loses the hop-by-hop
// headers and gets X-Forwarded-For; connection upgrades (WebSocket) are tunnelled.
//
// For each mirrored request the mirror records the status and latency (time to the
// response head, on both sides) of the primary and of the shadow and whether they
// answered alike (status code; optionally a sha256 of the body, for which the primary's
// body is buffered rather than streamed). Stats is a snapshot of the counters; Records
// returns the recent records, which canary/mirrorsrc turns into metrics.
//
// Mirroring is switched in process (SetShadow, Off), through a Registry of the proxies
// the server runs for local hosts, or over HTTP through the control endpoint of a sidecar
// (ControlHandler, Client, RunSidecar).
package mirror

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
)

// Options tune a proxy. Zero values take the defaults.
type Options struct {
	Methods     []string      // methods copied to the shadow; default GET, HEAD
	Queue       int           // copies waiting for a worker; default 1024
	Workers     int           // concurrent shadow requests; default 8
	Timeout     time.Duration // whole shadow request, body included; default 5s
	CompareBody bool          // hash both bodies and count differences
	Keep        int           // records kept for Records; default 8192
}

func (o Options) withDefaults() Options {
	if len(o.Methods) == 0 {
		o.Methods = []string{http.MethodGet, http.MethodHead}
	}
	if o.Queue <= 0 {
		o.Queue = 1024
	}
	if o.Workers <= 0 {
		o.Workers = 8
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.Keep <= 0 {
		o.Keep = 8192
	}
	return o
}

// Proxy is the mirror in front of one primary. Serve answers on a listener.
type Proxy struct {
	primary *url.URL
	ep      endpoint // the primary's, for tunnels
	prefix  string   // the primary URL's path, put before every request's
	opts    Options
	safe    map[string]bool
	hc      *fasthttp.HostClient

	targets atomic.Pointer[[]*target] // nil or empty: mirroring off
	epoch   atomic.Uint64             // bumped by every switch; stale queued copies are skipped
	next    atomic.Uint64             // round robin
	jobs    chan job
	stop    chan struct{}
	wg      sync.WaitGroup
	once    sync.Once

	rec recorder
	url atomic.Pointer[string]
}

// New returns a proxy in front of primary (a base URL such as http://127.0.0.1:8080),
// with mirroring off. Close stops its workers.
func New(primary string, o Options) (*Proxy, error) {
	u, err := url.Parse(primary)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("mirror: primary %q: expected an absolute http(s) URL", primary)
	}
	ep, err := parseEndpoint(u)
	if err != nil {
		return nil, fmt.Errorf("mirror: primary %q: %w", primary, err)
	}
	o = o.withDefaults()
	p := &Proxy{primary: u, ep: ep, prefix: strings.TrimRight(u.Path, "/"), opts: o, safe: map[string]bool{},
		jobs: make(chan job, o.Queue), stop: make(chan struct{})}
	for _, m := range o.Methods {
		p.safe[strings.ToUpper(m)] = true
	}
	p.hc = &fasthttp.HostClient{
		Addr:                     ep.addr,
		IsTLS:                    ep.tls,
		TLSConfig:                &tls.Config{ServerName: strings.TrimSuffix(ep.hostname(), ".")},
		MaxConns:                 4096,
		MaxIdleConnDuration:      90 * time.Second,
		ReadBufferSize:           16 << 10,
		DisablePathNormalizing:   true,
		NoDefaultUserAgentHeader: true,
	}
	p.rec.init(o.Keep)
	for range o.Workers {
		p.wg.Add(1)
		go p.work()
	}
	return p, nil
}

// Primary is the URL every request goes to.
func (p *Proxy) Primary() string { return p.primary.String() }

// URL is where the proxy answers, once it is served by Registry.Start or RunSidecar.
func (p *Proxy) URL() string {
	if u := p.url.Load(); u != nil {
		return *u
	}
	return ""
}

// SetShadow turns mirroring on to targets (base URLs), or off when targets is empty.
func (p *Proxy) SetShadow(targets []string) error {
	clean := make([]*target, 0, len(targets))
	for _, t := range targets {
		u, err := url.Parse(t)
		if err != nil || u.Scheme == "" || u.Host == "" {
			return fmt.Errorf("mirror: shadow %q: expected an absolute http(s) URL", t)
		}
		ep, err := parseEndpoint(u)
		if err != nil {
			return fmt.Errorf("mirror: shadow %q: %w", t, err)
		}
		clean = append(clean, &target{url: strings.TrimRight(t, "/"), ep: ep, conns: pool{max: p.opts.Workers}})
	}
	p.epoch.Add(1)
	if old := p.targets.Swap(&clean); old != nil {
		for _, t := range *old {
			t.conns.close()
		}
	}
	return nil
}

// Off turns mirroring off. Copies still queued are skipped.
func (p *Proxy) Off() { _ = p.SetShadow(nil) }

// Shadow returns the current shadow targets (empty when mirroring is off).
func (p *Proxy) Shadow() []string {
	var out []string
	if t := p.targets.Load(); t != nil {
		for _, x := range *t {
			out = append(out, x.url)
		}
	}
	return out
}

// Close turns mirroring off and stops the workers.
func (p *Proxy) Close() error {
	p.once.Do(func() {
		p.Off()
		close(p.stop)
		p.wg.Wait()
		p.hc.CloseIdleConnections()
	})
	return nil
}

// Server is a proxy answering on a listener.
type Server struct{ s *fasthttp.Server }

// Shutdown stops accepting, closes idle connections and waits for the requests in
// flight until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error { return s.s.ShutdownWithContext(ctx) }

// Close is Shutdown with a few seconds' patience.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	return s.Shutdown(ctx)
}

// headerTimeout bounds how long a connection may take to send a request's head.
const headerTimeout = 10 * time.Second

// Serve answers on ln until the returned server is shut down. control, when not nil,
// answers at ControlPath instead of the primary.
func (p *Proxy) Serve(ln net.Listener, control http.Handler) *Server {
	h := p.handle
	if control != nil {
		ctl := fasthttpadaptor.NewFastHTTPHandler(control)
		h = func(ctx *fasthttp.RequestCtx) {
			if string(ctx.Path()) == ControlPath {
				ctl(ctx)
				return
			}
			p.handle(ctx)
		}
	}
	s := &fasthttp.Server{
		Handler:                      h,
		ReadTimeout:                  headerTimeout, // lifted for streamed bodies in forward
		IdleTimeout:                  90 * time.Second,
		ReadBufferSize:               16 << 10, // the longest request head accepted
		StreamRequestBody:            true,
		DisablePreParseMultipartForm: true,
		NoDefaultServerHeader:        true,
		NoDefaultDate:                true,
		NoDefaultContentType:         true,
		CloseOnShutdown:              true,
		Logger:                       quiet{},
	}
	go s.Serve(ln)
	return &Server{s: s}
}

// quiet drops fasthttp's own log lines (a client hanging up mid-request and the like).
type quiet struct{}

func (quiet) Printf(string, ...any) {}

// handle sends the request to the primary and, when mirroring is on and the request is
// safe, queues a copy for the shadow once the primary has answered.
func (p *Proxy) handle(ctx *fasthttp.RequestCtx) {
	if ctx.Request.Header.ConnectionUpgrade() {
		p.tunnel(ctx)
		return
	}
	ts := p.targets.Load()
	if ts == nil || len(*ts) == 0 || !p.safe[string(ctx.Method())] {
		p.forward(ctx, true)
		return
	}
	t := (*ts)[(p.next.Add(1)-1)%uint64(len(*ts))]
	if t.open(time.Now()) {
		p.rec.shed.Add(1)
		p.forward(ctx, true)
		return
	}
	if len(p.jobs) == cap(p.jobs) { // full already: drop without copying anything
		p.rec.dropped.Add(1)
		p.forward(ctx, true)
		return
	}
	j := job{target: t, method: string(ctx.Method()), uri: string(ctx.RequestURI()), epoch: p.epoch.Load(), req: requestBufs.Get().(*[]byte)}
	*j.req = encodeRequest(*j.req, j.method, j.uri, t.ep.host, &ctx.Request.Header)
	start := time.Now()
	p.forward(ctx, !p.opts.CompareBody)
	j.primary = Result{Status: ctx.Response.StatusCode(), Latency: time.Since(start)}
	if p.opts.CompareBody {
		h := sha256.Sum256(ctx.Response.Body())
		j.primaryHash = h[:]
	}
	select {
	case p.jobs <- j:
		p.rec.queued.Add(1)
	default:
		p.rec.dropped.Add(1)
		putRequestBuf(j.req)
	}
}

// hopHeaders belong to one connection and are not passed on (RFC 9110, 7.6.1).
var hopHeaders = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

type header interface {
	Peek(key string) []byte
	Del(key string)
}

// dropHop removes the hop-by-hop headers and those the Connection header names.
func dropHop(h header) {
	for f := range bytes.SplitSeq(h.Peek("Connection"), []byte(",")) {
		if f = bytes.TrimSpace(f); len(f) > 0 {
			h.Del(string(f))
		}
	}
	for _, k := range hopHeaders {
		h.Del(k)
	}
}

// forward sends ctx's request to the primary and puts its answer in ctx's response,
// streamed when stream is set (after the head arrived, the body follows as it comes).
func (p *Proxy) forward(ctx *fasthttp.RequestCtx, stream bool) {
	req, resp := &ctx.Request, &ctx.Response
	clientClose := req.Header.ConnectionClose()
	req.Header.ResetConnectionClose() // the connection to the primary is ours, kept alive
	dropHop(&req.Header)
	p.forwardedFor(ctx)
	if p.prefix != "" {
		req.SetRequestURI(p.prefix + string(req.RequestURI()))
	}
	if req.IsBodyStream() {
		ctx.Conn().SetReadDeadline(time.Time{}) // an upload takes as long as it takes
	}
	resp.StreamBody = stream
	if err := p.hc.Do(req, resp); err != nil {
		resp.Reset()
		resp.SetStatusCode(http.StatusBadGateway)
	}
	resp.Header.ResetConnectionClose()
	dropHop(&resp.Header)
	if clientClose {
		ctx.SetConnectionClose()
	}
}

// forwardedFor appends the client's address to X-Forwarded-For.
func (p *Proxy) forwardedFor(ctx *fasthttp.RequestCtx) {
	ip := ctx.RemoteIP().String()
	if prior := ctx.Request.Header.Peek("X-Forwarded-For"); len(prior) > 0 {
		ip = string(prior) + ", " + ip
	}
	ctx.Request.Header.Set("X-Forwarded-For", ip)
}

// tunnel passes a connection upgrade (WebSocket and the like) to the primary: the
// request head is sent on a connection of its own, and from then on bytes flow both
// ways until either side closes.
func (p *Proxy) tunnel(ctx *fasthttp.RequestCtx) {
	up, err := p.ep.dial(time.Now().Add(5 * time.Second))
	if err != nil {
		ctx.SetStatusCode(http.StatusBadGateway)
		return
	}
	up.SetDeadline(time.Time{})
	p.forwardedFor(ctx)
	if p.prefix != "" {
		ctx.Request.SetRequestURI(p.prefix + string(ctx.Request.RequestURI()))
	}
	head := append([]byte(nil), ctx.Request.Header.Header()...)
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(c net.Conn) {
		defer up.Close()
		if _, err := up.Write(head); err != nil {
			return
		}
		done := make(chan struct{})
		go func() { io.Copy(up, c); up.CloseWrite(); close(done) }()
		io.Copy(c, up.br)
		c.Close()
		<-done
	})
}
