package mirror

import (
	"bytes"
	"crypto/sha256"
	"io"
	"time"
)

// job is one copy waiting for a worker: the request to replay, encoded (see client.go),
// and how the primary answered.
type job struct {
	target      *target
	req         *[]byte
	method, uri string
	epoch       uint64
	primary     Result
	primaryHash []byte
}

func (p *Proxy) work() {
	defer p.wg.Done()
	for {
		select {
		case <-p.stop:
			return
		case j := <-p.jobs:
			p.send(j)
			putRequestBuf(j.req)
		}
	}
}

// send replays j on its shadow target and records the comparison.
func (p *Proxy) send(j job) {
	if j.epoch != p.epoch.Load() {
		p.rec.skipped.Add(1)
		return
	}
	r := Record{Time: time.Now(), Method: j.method, URI: j.uri, Target: j.target.url, Primary: j.primary}
	r.Shadow, r.BodyMatch = p.shadow(r.Time, j)
	end := r.Time.Add(r.Shadow.Latency)
	j.target.result(r.Shadow.Err == "", end)
	r.StatusMatch = r.Shadow.Err == "" && r.Shadow.Status == j.primary.Status
	if !p.opts.CompareBody || r.Shadow.Err != "" {
		r.BodyMatch = r.StatusMatch
	}
	p.rec.add(r, p.opts.CompareBody)
}

// shadow sends j and says how the shadow answered and, when bodies are compared,
// whether its body hashed as the primary's did. The latency is to the answer's head, as
// the primary's is.
func (p *Proxy) shadow(start time.Time, j job) (Result, bool) {
	var head time.Time
	if !p.opts.CompareBody {
		status, err := j.target.roundTrip(*j.req, j.method, p.opts.Timeout, io.Discard, &head)
		return result(status, err, start, head), false
	}
	h := sha256.New()
	status, err := j.target.roundTrip(*j.req, j.method, p.opts.Timeout, h, &head)
	res := result(status, err, start, head)
	return res, res.Err == "" && bytes.Equal(h.Sum(nil), j.primaryHash)
}

func result(status int, err error, start, head time.Time) Result {
	r := Result{Status: status, Latency: time.Since(start)}
	if !head.IsZero() {
		r.Latency = head.Sub(start)
	}
	if err != nil {
		r.Err = err.Error()
	}
	return r
}
