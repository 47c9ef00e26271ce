package mirror

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// The shadow client is a small HTTP/1.1 client of its own rather than http.Client: a
// copy is written as bytes encoded once when it is queued, sent by the worker itself on
// a kept-alive connection with a deadline, and its answer parsed with http.ReadResponse.
// That spares, per copy, http.Transport's hand-offs between three goroutines (caller,
// writeLoop, readLoop), a context with its timer, a request and a cloned header, which
// were most of the proxy's own cost of a fast shadow. One request at a time per
// connection (no pipelining), so a shadow's latency is its own.

// idleFor is how long an idle shadow connection is trusted; older ones are closed
// rather than reused, as the shadow has likely closed its end.
const idleFor = 60 * time.Second

// shadowConn is one kept-alive connection to a shadow.
type shadowConn struct {
	net.Conn
	br   *bufio.Reader
	used time.Time // when it went idle
}

// pool holds a target's idle connections.
type pool struct {
	mu     sync.Mutex
	idle   []*shadowConn
	max    int
	closed bool
}

func (p *pool) get(now time.Time) *shadowConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.idle) > 0 {
		c := p.idle[len(p.idle)-1]
		p.idle = p.idle[:len(p.idle)-1]
		if now.Sub(c.used) < idleFor {
			return c
		}
		c.Close()
	}
	return nil
}

func (p *pool) put(c *shadowConn, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || len(p.idle) >= p.max {
		c.Close()
		return
	}
	c.used = now
	p.idle = append(p.idle, c)
}

// close closes the idle connections; connections in use are closed when put back.
func (p *pool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for _, c := range p.idle {
		c.Close()
	}
	p.idle = nil
}

// endpoint is where a target is reached.
type endpoint struct {
	addr string // host:port to dial
	host string // Host header and TLS server name
	tls  bool
}

func parseEndpoint(u *url.URL) (endpoint, error) {
	e := endpoint{addr: u.Host, host: u.Host}
	switch u.Scheme {
	case "http":
		if u.Port() == "" {
			e.addr = net.JoinHostPort(u.Hostname(), "80")
		}
	case "https":
		e.tls = true
		if u.Port() == "" {
			e.addr = net.JoinHostPort(u.Hostname(), "443")
		}
	default:
		return e, fmt.Errorf("scheme %q is not http or https", u.Scheme)
	}
	return e, nil
}

func (e endpoint) dial(deadline time.Time) (*shadowConn, error) {
	d := &net.Dialer{Timeout: 2 * time.Second, Deadline: deadline, KeepAlive: 30 * time.Second}
	var c net.Conn
	var err error
	if e.tls {
		td := &tls.Dialer{NetDialer: d, Config: &tls.Config{ServerName: strings.TrimSuffix(e.hostname(), ".")}}
		c, err = td.DialContext(context.Background(), "tcp", e.addr)
	} else {
		c, err = d.Dial("tcp", e.addr)
	}
	if err != nil {
		return nil, err
	}
	return &shadowConn{Conn: c, br: bufio.NewReaderSize(c, 4096)}, nil
}

// CloseWrite half-closes a plain TCP connection (a tunnel's end of input); other
// connections are closed.
func (c *shadowConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Close()
}

func (e endpoint) hostname() string {
	if h, _, err := net.SplitHostPort(e.host); err == nil {
		return h
	}
	return e.host
}

// skipHeaders are not copied to the shadow: connection-level headers, those describing
// a body the copy does not carry, Host (the shadow's own is sent) and our marker.
var skipHeaders = map[string]bool{"Connection": true, "Proxy-Connection": true, "Keep-Alive": true,
	"Proxy-Authenticate": true, "Proxy-Authorization": true, "Te": true, "Trailer": true,
	"Transfer-Encoding": true, "Upgrade": true, "Content-Length": true, "Host": true, "X-Immunity-Mirror": true}

// encodeRequest appends the copy of a request as it goes on the wire: no body, the
// shadow's Host, the original headers but skipHeaders, and X-Immunity-Mirror: 1. Header
// lines with a CR or LF (only a handler called in process could pass them) are left out.
func encodeRequest(b []byte, method, uri, host string, h *fasthttp.RequestHeader) []byte {
	b = append(b, method...)
	b = append(b, ' ')
	b = append(b, uri...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, host...)
	b = append(b, "\r\n"...)
	for k, v := range h.All() {
		if skipHeaders[string(k)] || bytes.ContainsAny(k, "\r\n: ") || bytes.ContainsAny(v, "\r\n") {
			continue
		}
		b = append(b, k...)
		b = append(b, ": "...)
		b = append(b, v...)
		b = append(b, "\r\n"...)
	}
	return append(b, "X-Immunity-Mirror: 1\r\n\r\n"...)
}

// requestBufs recycles encoded copies.
var requestBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

func putRequestBuf(b *[]byte) {
	if cap(*b) <= 16<<10 {
		*b = (*b)[:0]
		requestBufs.Put(b)
	}
}

var headRequest = &http.Request{Method: http.MethodHead}

// roundTrip sends the encoded copy to t and reads the answer's body into body (which
// may be io.Discard), all within timeout; head is set to when the answer's head arrived. A kept-alive connection that turns out closed
// is retried once on a new one: every mirrored method is safe.
func (t *target) roundTrip(req []byte, method string, timeout time.Duration, body io.Writer, head *time.Time) (int, error) {
	now := time.Now()
	deadline := now.Add(timeout)
	c := t.conns.get(now)
	reused := c != nil
	for {
		if c == nil {
			var err error
			if c, err = t.ep.dial(deadline); err != nil {
				return 0, timeoutErr(err, timeout)
			}
		}
		status, keep, sent, err := exchange(c, req, method, deadline, body, head)
		if keep {
			t.conns.put(c, time.Now())
		} else {
			c.Close()
		}
		if err == nil || !reused || sent || errors.Is(err, os.ErrDeadlineExceeded) {
			return status, timeoutErr(err, timeout)
		}
		c, reused = nil, false
	}
}

// exchange writes one request on c and reads its answer. sent says whether any of the
// answer arrived (so a failure is the shadow's, not a stale connection's); keep whether
// c may carry another request.
func exchange(c *shadowConn, req []byte, method string, deadline time.Time, body io.Writer, head *time.Time) (status int, keep, sent bool, err error) {
	if err = c.SetDeadline(deadline); err != nil {
		return 0, false, false, err
	}
	if _, err = c.Write(req); err != nil {
		return 0, false, false, err
	}
	var hr *http.Request
	if method == http.MethodHead {
		hr = headRequest
	}
	resp, err := http.ReadResponse(c.br, hr)
	for err == nil && resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
		resp, err = http.ReadResponse(c.br, hr) // 1xx: the answer follows
	}
	if err != nil {
		return 0, false, c.br.Buffered() > 0, err
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return 0, false, true, errors.New("shadow switched protocols")
	}
	*head = time.Now()
	_, err = io.Copy(body, resp.Body)
	resp.Body.Close()
	if err != nil {
		return resp.StatusCode, false, true, fmt.Errorf("reading the shadow's body: %w", err)
	}
	delimited := resp.ContentLength >= 0 || len(resp.TransferEncoding) > 0 || method == http.MethodHead ||
		resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusNotModified
	return resp.StatusCode, delimited && !resp.Close && c.br.Buffered() == 0, true, nil
}

func timeoutErr(err error, timeout time.Duration) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("shadow deadline of %s exceeded: %w", timeout, err)
	}
	return err
}
