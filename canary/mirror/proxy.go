// Package mirror is the traffic mirror: a reverse proxy in front of one production host.
//
// Every request goes to the primary unchanged and its response is streamed back as is.
// When shadow targets are set, safe requests (GET and HEAD by default) are also copied to
// one shadow target (round robin over the targets) once the primary has answered: the
// copy is put on a bounded queue with a non-blocking send (dropped and counted when the
// queue is full) and sent by a small pool of workers over keep-alive connections with a
// timeout by a small HTTP/1.1 client of the package's own (client.go). A shadow failing
// at the transport level (dead, refusing, timing out) several times in a row rests for
// a second, its copies shed and counted (see breaker.go). So the primary never waits
// for a shadow, whether it is fast, slow or dead, and a dead one costs next to nothing. The primary's request gets the usual reverse-proxy treatment
// (httputil.ReverseProxy: hop-by-hop headers dropped, X-Forwarded-For added).
//
// For each mirrored request the mirror records the status and latency of the primary and
// of the shadow and whether they answered alike (status code; optionally a sha256 of the
// body). Stats is a snapshot of the counters; Records returns the recent records, which
// canary/mirrorsrc turns into metrics.
//
// Mirroring is switched in process (SetShadow, Off), through a Registry of the proxies
// the server runs for local hosts, or over HTTP through the control endpoint of a sidecar
// (ControlHandler, Client, RunSidecar).
package mirror

import (
	"crypto/sha256"
	"fmt"
	"hash"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
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

// Proxy is the mirror in front of one primary. It is an http.Handler.
type Proxy struct {
	primary *url.URL
	opts    Options
	safe    map[string]bool
	rp      *httputil.ReverseProxy

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
	o = o.withDefaults()
	p := &Proxy{primary: u, opts: o, safe: map[string]bool{}, jobs: make(chan job, o.Queue), stop: make(chan struct{})}
	for _, m := range o.Methods {
		p.safe[strings.ToUpper(m)] = true
	}
	p.rp = httputil.NewSingleHostReverseProxy(u)
	p.rp.Transport = newTransport(256)
	p.rp.BufferPool = bufferPool{}
	p.rp.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
		w.WriteHeader(http.StatusBadGateway)
	}
	p.rec.init(o.Keep)
	for range o.Workers {
		p.wg.Add(1)
		go p.work()
	}
	return p, nil
}

// bufferPool reuses the proxy's copy buffers instead of allocating 32 KiB per response.
type bufferPool struct{}

var buffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (bufferPool) Get() []byte  { return *(buffers.Get().(*[]byte)) }
func (bufferPool) Put(b []byte) { buffers.Put(&b) }

func newTransport(idle int) *http.Transport {
	return &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        idle * 4,
		MaxIdleConnsPerHost: idle,
		IdleConnTimeout:     90 * time.Second,
	}
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
	})
	return nil
}

// ServeHTTP sends r to the primary and, when mirroring is on and r is safe, queues a
// copy for the shadow once the primary has answered.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ts := p.targets.Load()
	if ts == nil || len(*ts) == 0 || !p.safe[r.Method] {
		p.rp.ServeHTTP(w, r)
		return
	}
	t := (*ts)[(p.next.Add(1)-1)%uint64(len(*ts))]
	if t.open(time.Now()) {
		p.rec.shed.Add(1)
		p.rp.ServeHTTP(w, r)
		return
	}
	if len(p.jobs) == cap(p.jobs) { // full already: drop without copying anything
		p.rec.dropped.Add(1)
		p.rp.ServeHTTP(w, r)
		return
	}
	j := job{target: t, method: r.Method, uri: requestURI(r), epoch: p.epoch.Load(), req: requestBufs.Get().(*[]byte)}
	*j.req = encodeRequest(*j.req, j.method, j.uri, t.ep.host, r.Header)
	rw := &watch{ResponseWriter: w, status: http.StatusOK}
	if p.opts.CompareBody {
		rw.hash = sha256.New()
	}
	start := time.Now()
	p.rp.ServeHTTP(rw, r)
	j.primary = Result{Status: rw.status, Latency: time.Since(start)}
	if rw.hash != nil {
		j.primaryHash = rw.hash.Sum(nil)
	}
	select {
	case p.jobs <- j:
		p.rec.queued.Add(1)
	default:
		p.rec.dropped.Add(1)
		putRequestBuf(j.req)
	}
}

// requestURI is the path and query the copy asks for: as the client sent it when that
// is a plain path (no allocation), else rebuilt from the parsed URL.
func requestURI(r *http.Request) string {
	if strings.HasPrefix(r.RequestURI, "/") {
		return r.RequestURI
	}
	return r.URL.RequestURI()
}

// watch passes a response through while noting its status and hashing its body.
type watch struct {
	http.ResponseWriter
	status int
	wrote  bool
	hash   hash.Hash
}

func (w *watch) WriteHeader(code int) {
	if !w.wrote && code >= 200 {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *watch) Write(b []byte) (int, error) {
	w.wrote = true
	if w.hash != nil {
		w.hash.Write(b)
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController (used by httputil.ReverseProxy to flush) reach
// the real writer, so responses stream.
func (w *watch) Unwrap() http.ResponseWriter { return w.ResponseWriter }
