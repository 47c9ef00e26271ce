package mirror

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"net/http"
	"time"
)

// job is one copy waiting for a worker: the request to replay and how the primary answered.
type job struct {
	target      *target
	method, uri string
	header      http.Header
	epoch       uint64
	primary     Result
	primaryHash []byte
}

// hopHeaders are connection-level headers that are not copied to the shadow.
var hopHeaders = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

func (p *Proxy) work() {
	defer p.wg.Done()
	for {
		select {
		case <-p.stop:
			return
		case j := <-p.jobs:
			p.send(j)
		}
	}
}

// send replays j on one shadow target and records the comparison.
func (p *Proxy) send(j job) {
	if j.epoch != p.epoch.Load() {
		p.rec.skipped.Add(1)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.opts.Timeout)
	defer cancel()
	r := Record{Time: time.Now(), Method: j.method, URI: j.uri, Target: j.target.url, Primary: j.primary}
	r.Shadow, r.BodyMatch = p.shadow(ctx, j.target.url, j)
	j.target.result(r.Shadow.Err == "", time.Now())
	r.StatusMatch = r.Shadow.Err == "" && r.Shadow.Status == j.primary.Status
	if !p.opts.CompareBody || r.Shadow.Err != "" {
		r.BodyMatch = r.StatusMatch
	}
	p.rec.add(r, p.opts.CompareBody)
}

func (p *Proxy) shadow(ctx context.Context, target string, j job) (Result, bool) {
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, j.method, target+j.uri, nil)
	if err != nil {
		return Result{Err: err.Error(), Latency: time.Since(start)}, false
	}
	req.Header = j.header
	for _, h := range hopHeaders {
		req.Header.Del(h)
	}
	req.Header.Set("X-Immunity-Mirror", "1")
	resp, err := p.client.Do(req)
	if err != nil {
		return Result{Err: err.Error(), Latency: time.Since(start)}, false
	}
	defer resp.Body.Close()
	h := sha256.New()
	var dst io.Writer = io.Discard
	if p.opts.CompareBody {
		dst = h
	}
	_, err = io.Copy(dst, resp.Body)
	res := Result{Status: resp.StatusCode, Latency: time.Since(start)}
	if err != nil {
		res.Err = "reading the shadow's body: " + err.Error()
	}
	return res, p.opts.CompareBody && bytes.Equal(h.Sum(nil), j.primaryHash)
}
