package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/immunity-app/immunity/internal/wait"
	"github.com/immunity-app/immunity/pipeline"
	"github.com/immunity-app/immunity/store"
)

// The dashboard's live updates. Live is a pipeline.Listener that publishes each event
// through the store's live messages (store.Publish: NOTIFY on PostgreSQL, an in-memory
// fan-out on SQLite), so every replica on the database hears every replica's
// transitions; it receives them (store.Subscribe) and fans each out to the browsers
// watching this server, over Server-Sent Events (GET /api/events). Notify never waits: the
// event is queued for publishing (a full queue drops it, counted). Every browser has a
// bounded buffer; a browser whose buffer is full is dropped (its EventSource reconnects
// and the page refreshes what it missed), and so is every browser when the subscription
// may have missed messages (a lost database connection). The browser's script then
// fetches the server-rendered fragments the event concerns.

// liveBuffer is how many events a browser may fall behind before it is dropped.
const liveBuffer = 64

// liveQueue is how many events may wait to be published.
const liveQueue = 1024

// livePing is how often an idle stream sends a comment, so proxies keep it open and a
// vanished browser is noticed.
const livePing = 15 * time.Second

// liveReady is how long a new stream waits for the server to be subscribed before it is
// answered 503 (the database cannot be reached).
const liveReady = 5 * time.Second

// liveEvent is what a browser receives: enough to know which fragments to refresh. Seq
// counts the events this server's streams were sent.
type liveEvent struct {
	Seq     uint64 `json:"seq,omitempty"`
	Kind    string `json:"kind"`
	App     string `json:"app,omitempty"`
	Region  string `json:"region,omitempty"`
	Host    string `json:"host,omitempty"`
	Run     int64  `json:"run,omitempty"`
	State   string `json:"state,omitempty"`
	Message string `json:"message,omitempty"`
	Time    string `json:"time"`
}

// liveFeed is the store's live messages.
type liveFeed interface {
	Publish(ctx context.Context, msg []byte) error
	Subscribe(ctx context.Context) (*store.Subscription, error)
}

// Live publishes pipeline events and fans the ones heard out to the dashboard's browsers.
type Live struct {
	feed liveFeed
	log  *slog.Logger
	out  chan []byte // events waiting to be published, in order
	stop context.CancelFunc
	ctx  context.Context

	mu      sync.Mutex
	seq     uint64
	clients map[chan []byte]struct{}
	closed  bool
	servers map[*http.Server]bool // whose shutdown ends the streams
	dropped uint64
	lost    uint64        // events not published: the queue was full or the database refused
	ready   chan struct{} // closed while subscribed
}

// NewLive returns a hub with no browsers, publishing and subscribed through feed until it
// is closed.
func NewLive(feed liveFeed, log *slog.Logger) *Live {
	ctx, stop := context.WithCancel(context.Background())
	l := &Live{feed: feed, log: log, out: make(chan []byte, liveQueue), ctx: ctx, stop: stop,
		clients: map[chan []byte]struct{}{}, servers: map[*http.Server]bool{}, ready: make(chan struct{})}
	go l.publish()
	go l.listen()
	return l
}

// Notify queues the event for every replica's browsers without waiting.
func (l *Live) Notify(_ context.Context, ev pipeline.Event) {
	msg := liveEvent{Kind: string(ev.Kind), App: ev.App, Region: ev.Region, Host: ev.Host, Run: ev.Run.ID,
		State: string(ev.Run.State), Message: clipRunes(ev.Message, 300), Time: ev.Time.UTC().Format(time.RFC3339Nano)}
	if msg.App == "" {
		msg.App = ev.Run.App
	}
	data, err := json.Marshal(msg)
	if err != nil {
		return
	}
	select {
	case l.out <- data:
	default:
		l.mu.Lock()
		l.lost++
		l.mu.Unlock()
	}
}

// publish sends the queued events, in order, until the hub closes.
func (l *Live) publish() {
	for {
		select {
		case data := <-l.out:
			if err := l.feed.Publish(l.ctx, data); err != nil {
				if l.ctx.Err() != nil || errors.Is(err, store.ErrClosed) {
					return
				}
				l.mu.Lock()
				l.lost++
				l.mu.Unlock()
				l.log.Warn("live update not published", "err", err)
			}
		case <-l.ctx.Done():
			return
		}
	}
}

// listen subscribes to the live messages and fans each out, subscribing again (after
// dropping every browser, which then refreshes) when the subscription ends with a gap.
func (l *Live) listen() {
	for l.ctx.Err() == nil {
		sub, err := l.feed.Subscribe(l.ctx)
		if err != nil {
			if l.ctx.Err() != nil || errors.Is(err, store.ErrClosed) {
				return
			}
			l.log.Warn("live updates: not subscribed", "err", err)
			if wait.Sleep(l.ctx, time.Second) != nil {
				return
			}
			continue
		}
		l.setReady(true)
		for {
			data, err := sub.Next(l.ctx)
			if err != nil {
				sub.Close()
				l.setReady(false)
				l.dropAll()
				if l.ctx.Err() != nil || errors.Is(err, store.ErrClosed) {
					return
				}
				l.log.Warn("live updates: resubscribing", "err", err)
				break
			}
			l.fanOut(data)
		}
	}
}

func (l *Live) setReady(on bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case <-l.ready:
		if !on {
			l.ready = make(chan struct{})
		}
	default:
		if on {
			close(l.ready)
		}
	}
}

// fanOut sends an event heard to every browser without waiting; full buffers are dropped.
func (l *Live) fanOut(data []byte) {
	var msg liveEvent
	if err := json.Unmarshal(data, &msg); err != nil {
		l.log.Warn("live update unreadable", "err", err)
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || len(l.clients) == 0 {
		return
	}
	l.seq++
	msg.Seq = l.seq
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

// dropAll ends every browser's stream: they reconnect and refresh everything.
func (l *Live) dropAll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for c := range l.clients {
		delete(l.clients, c)
		close(c)
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

// Sent is how many events this server handed to its streams.
func (l *Live) Sent() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seq
}

// Lost is how many events were not published (the queue was full or the database
// refused).
func (l *Live) Lost() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lost
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
	l.stop()
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
func (l *Live) ServeEvents(c *gin.Context) { l.serveEvents(c, true) }

// withoutLogs is an event as a browser that may not read the run's log receives it: no
// log line at all (ok false), and no message, only what its page refreshes by.
func withoutLogs(data []byte) ([]byte, bool) {
	var ev liveEvent
	if json.Unmarshal(data, &ev) != nil || ev.Kind == string(pipeline.Logged) {
		return nil, false
	}
	ev.Message = ""
	out, err := json.Marshal(ev)
	return out, err == nil
}

// serveEvents is ServeEvents; full false leaves the run's log lines and the events'
// messages out (withoutLogs).
func (l *Live) serveEvents(c *gin.Context, full bool) {
	l.endOnShutdown(c.Request)
	if !l.waitReady(c.Request.Context()) {
		c.String(http.StatusServiceUnavailable, "live updates unavailable: not subscribed to the database's live messages")
		return
	}
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
			if !full {
				if data, ok = withoutLogs(data); !ok {
					continue
				}
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

// waitReady waits, up to liveReady, for the hub to be subscribed, so a stream whose first
// bytes arrived hears every event published after.
func (l *Live) waitReady(ctx context.Context) bool {
	l.mu.Lock()
	ready, closed := l.ready, l.closed
	l.mu.Unlock()
	if closed {
		return true // its stream ends at once
	}
	t := time.NewTimer(liveReady)
	defer t.Stop()
	select {
	case <-ready:
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	return false
}

func clipRunes(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}
