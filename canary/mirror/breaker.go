package mirror

import (
	"sync/atomic"
	"time"
)

// A target whose shadow requests fail at the transport level (refused, reset, timed
// out) tripLimit times in a row is given a rest of tripRest: its copies are shed
// (counted, not queued) until then, and the first copy after the rest tries it again.
// So a dead canary costs a few failed dials a second, not one per production request.
const (
	tripLimit = 5
	tripRest  = time.Second
)

// target is one shadow with its breaker and its idle connections.
type target struct {
	url   string
	ep    endpoint
	conns pool
	fails atomic.Int32
	until atomic.Int64 // unix nanoseconds; copies are shed before this
}

func (t *target) open(now time.Time) bool { return now.UnixNano() < t.until.Load() }

func (t *target) result(ok bool, now time.Time) {
	if ok {
		t.fails.Store(0)
		return
	}
	if t.fails.Add(1) >= tripLimit {
		t.fails.Store(0)
		t.until.Store(now.Add(tripRest).UnixNano())
	}
}
