package mirror

import (
	"sync"
	"sync/atomic"
	"time"
)

// Result is how one side answered a mirrored request.
type Result struct {
	Status  int           `json:"status"` // 0 when the request failed
	Latency time.Duration `json:"latency_ns"`
	Err     string        `json:"err,omitempty"` // transport error or timeout (shadow only)
}

// Failed says whether the answer counts as an error: a transport error or a 5xx.
func (r Result) Failed() bool { return r.Err != "" || r.Status >= 500 }

// Record is one mirrored request: the primary's answer, the shadow's, and how they compare.
type Record struct {
	Seq         uint64    `json:"seq"`
	Time        time.Time `json:"time"`
	Method      string    `json:"method"`
	URI         string    `json:"uri"`
	Target      string    `json:"target"`
	Primary     Result    `json:"primary"`
	Shadow      Result    `json:"shadow"`
	StatusMatch bool      `json:"status_match"`
	BodyMatch   bool      `json:"body_match"` // equals StatusMatch unless bodies are compared
}

// Stats is a snapshot of a proxy's counters since it started.
type Stats struct {
	Queued   uint64 `json:"queued"`  // copies put on the queue
	Dropped  uint64 `json:"dropped"` // copies dropped because the queue was full
	Skipped  uint64 `json:"skipped"` // queued copies not sent because mirroring was switched
	Shed     uint64 `json:"shed"`    // copies not made while their target rested after failures
	Mirrored uint64 `json:"mirrored"`
	// Of the mirrored requests:
	PrimaryFailed  uint64        `json:"primary_failed"` // 5xx
	ShadowFailed   uint64        `json:"shadow_failed"`  // 5xx, transport error or timeout
	ShadowErrors   uint64        `json:"shadow_errors"`  // transport error or timeout only
	StatusMismatch uint64        `json:"status_mismatch"`
	BodyMismatch   uint64        `json:"body_mismatch"`      // counted when bodies are compared
	PrimaryLatency time.Duration `json:"primary_latency_ns"` // sums; divide by Mirrored
	ShadowLatency  time.Duration `json:"shadow_latency_ns"`
	LastSeq        uint64        `json:"last_seq"` // Seq of the newest record
}

// recorder keeps the counters and a ring of recent records.
type recorder struct {
	queued, dropped, skipped, shed atomic.Uint64

	mu    sync.Mutex
	st    Stats
	ring  []Record
	next  int
	count int
}

func (r *recorder) init(keep int) { r.ring = make([]Record, keep) }

func (r *recorder) add(rec Record, compareBody bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := &r.st
	s.LastSeq++
	rec.Seq = s.LastSeq
	s.Mirrored++
	s.PrimaryLatency += rec.Primary.Latency
	s.ShadowLatency += rec.Shadow.Latency
	if rec.Primary.Failed() {
		s.PrimaryFailed++
	}
	if rec.Shadow.Failed() {
		s.ShadowFailed++
	}
	if rec.Shadow.Err != "" {
		s.ShadowErrors++
	}
	if !rec.StatusMatch {
		s.StatusMismatch++
	}
	if compareBody && !rec.BodyMatch {
		s.BodyMismatch++
	}
	r.ring[r.next] = rec
	r.next = (r.next + 1) % len(r.ring)
	r.count = min(r.count+1, len(r.ring))
}

// Stats returns a snapshot of the proxy's counters.
func (p *Proxy) Stats() Stats {
	p.rec.mu.Lock()
	s := p.rec.st
	p.rec.mu.Unlock()
	s.Queued, s.Dropped, s.Skipped, s.Shed = p.rec.queued.Load(), p.rec.dropped.Load(), p.rec.skipped.Load(), p.rec.shed.Load()
	return s
}

// Records returns the kept records with Seq > after, oldest first. Older records than
// the ring holds are gone; compare the first Seq with after+1 to see whether some were.
func (p *Proxy) Records(after uint64) []Record {
	r := &p.rec
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Record
	for i := range r.count {
		rec := r.ring[(r.next-r.count+i+len(r.ring))%len(r.ring)]
		if rec.Seq > after {
			out = append(out, rec)
		}
	}
	return out
}
