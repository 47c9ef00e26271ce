package app

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/immunity-app/immunity/pipeline"
)

// The dashboard's live updates. Live is a pipeline.Listener that fans each event out to
// the browsers watching, over Server-Sent Events (GET /api/events). Every browser has a
// bounded buffer; Notify never waits: a browser whose buffer is full is dropped (its
// EventSource reconnects and the page refreshes what it missed). The browser's script
// then fetches the server-rendered fragments the event concerns.

// liveBuffer is how many events a browser may fall behind before it is dropped.
const liveBuffer = 64

// livePing is how often an idle stream sends a comment, so proxies keep it open and a
// vanished browser is noticed.
const livePing = 15 * time.Second

// liveEvent is what a browser receives: enough to know which fragments to refresh.
type liveEvent struct {
	Seq     uint64 `json:"seq"`
	Kind    string `json:"kind"`
	App     string `json:"app,omitempty"`
	Region  string `json:"region,omitempty"`
	Host    string `json:"host,omitempty"`
	Run     int64  `json:"run,omitempty"`
	State   string `json:"state,omitempty"`
	Message string `json:"message,omitempty"`
	Time    string `json:"time"`
}

// Live fans pipeline events out to the dashboard's browsers.
type Live struct {
	mu      sync.Mutex
	seq     uint64
	clients map[chan []byte]struct{}
	closed  bool
	servers map[*http.Server]bool // whose shutdown ends the streams
	dropped uint64
}

// NewLive returns a hub with no browsers.
func NewLive() *Live {
	return &Live{clients: map[chan []byte]struct{}{}, servers: map[*http.Server]bool{}}
}

// Notify sends the event to every browser without waiting; full buffers are dropped.
func (l *Live) Notify(_ context.Context, ev pipeline.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || len(l.clients) == 0 {
		return
	}
	l.seq++
	msg := liveEvent{Seq: l.seq, Kind: string(ev.Kind), App: ev.App, Region: ev.Region, Host: ev.Host, Run: ev.Run.ID,
		State: string(ev.Run.State), Message: clipRunes(ev.Message, 300), Time: ev.Time.UTC().Format(time.RFC3339Nano)}
	if msg.App == "" {
		msg.App = ev.Run.App
	}
	data, err := json.Marshal(msg)
	if err != nil {
		return
	}
	for c := range l.clients {
		select {
		case c <- data:
		default:
			delete(l.clients, c)
			close(c)
			l.dropped++
		}
	}
}

// Subscribe adds a browser; its channel is closed when it is dropped or the hub closes.
func (l *Live) Subscribe() (<-chan []byte, func()) {
	c := make(chan []byte, liveBuffer)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		close(c)
		return c, func() {}
	}
	l.clients[c] = struct{}{}
	return c, func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if _, ok := l.clients[c]; ok {
			delete(l.clients, c)
			close(c)
		}
	}
}

// Clients is how many browsers are watching.
func (l *Live) Clients() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.clients)
}

// Dropped is how many browsers were dropped for falling behind.
func (l *Live) Dropped() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.dropped
}

// Close ends every stream; later subscribers get a closed channel.
func (l *Live) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	l.closed = true
	for c := range l.clients {
		delete(l.clients, c)
		close(c)
	}
}

// endOnShutdown closes the hub when the http.Server serving r shuts down: a stream never
// goes idle, so Shutdown would otherwise wait for it until its deadline.
func (l *Live) endOnShutdown(r *http.Request) {
	srv, ok := r.Context().Value(http.ServerContextKey).(*http.Server)
	if !ok {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.servers[srv] {
		l.servers[srv] = true
		srv.RegisterOnShutdown(l.Close)
	}
}

// ServeEvents streams events to one browser until it leaves, falls behind or the server
// shuts down.
func (l *Live) ServeEvents(c *gin.Context) {
	l.endOnShutdown(c.Request)
	events, leave := l.Subscribe()
	defer leave()
	w := c.Writer
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, "retry: 2000\n: immunity live updates\n\n")
	w.Flush()
	ping := time.NewTicker(livePing)
	defer ping.Stop()
	for {
		select {
		case data, ok := <-events:
			if !ok {
				return
			}
			if _, err := fmt.Fprintf(w, "data: %s\n\n", data); err != nil {
				return
			}
		case <-ping.C:
			if _, err := fmt.Fprint(w, ": ping\n\n"); err != nil {
				return
			}
		case <-c.Request.Context().Done():
			return
		}
		w.Flush()
	}
}

func clipRunes(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}
