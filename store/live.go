package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Live messages: what one server publishes, every server sharing the database receives,
// itself included, so a dashboard on any replica shows every replica's transitions. On
// PostgreSQL a message is a NOTIFY on one channel and a subscription LISTENs on a
// connection of its own; on SQLite, whose database one process serves, it is an in-memory
// fan-out. Callers see one interface: Publish, Subscribe, Next. Delivery is best effort
// and in order per publisher: a subscription that falls behind, or whose connection
// drops, ends with ErrLiveGap, and its reader should take everything as changed.

// liveChannel is the PostgreSQL notification channel of live messages.
const liveChannel = "immunity_live"

// MaxLiveMessage is the longest message Publish takes (NOTIFY's payload limit is 8000
// bytes).
const MaxLiveMessage = 7999

// liveBacklog is how many messages a SQLite subscription may fall behind before it ends.
const liveBacklog = 256

// ErrLiveGap ends a subscription that may have missed messages.
var ErrLiveGap = errors.New("live messages may have been missed")

// ErrClosed is the answer of a closed store's live messages.
var ErrClosed = errors.New("store closed")

// liveHub is the store's subscriptions: the in-memory fan-out of SQLite, and on both
// engines what Close ends.
type liveHub struct {
	mu     sync.Mutex
	subs   map[*Subscription]struct{}
	closed bool
}

// Subscription receives live messages until it is closed or ends with an error.
type Subscription struct {
	st     *Store
	c      chan []byte // SQLite: the messages fanned out to it
	connMu sync.Mutex  // held while a Next waits on conn
	conn   *pgx.Conn   // PostgreSQL: the LISTENing connection

	mu  sync.Mutex
	err error // why it ended: ErrLiveGap, ErrClosed
	end chan struct{}
}

// Publish sends a message to every subscription of every server on the database.
func (s *Store) Publish(ctx context.Context, msg []byte) error {
	if len(msg) > MaxLiveMessage {
		return fmt.Errorf("publish live message: %d bytes, at most %d", len(msg), MaxLiveMessage)
	}
	if s.db.engine == postgresEngine {
		if _, err := s.db.pool.ExecContext(ctx, `SELECT pg_notify($1, $2)`, liveChannel, string(msg)); err != nil {
			return fmt.Errorf("publish live message: %w", err)
		}
		return nil
	}
	h := &s.live
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return fmt.Errorf("publish live message: %w", ErrClosed)
	}
	for sub := range h.subs {
		select {
		case sub.c <- append([]byte(nil), msg...):
		default: // fallen behind: ended, never waited for
			delete(h.subs, sub)
			sub.stop(ErrLiveGap)
		}
	}
	return nil
}

// Subscribe starts receiving live messages: every message published once it returns is
// delivered (until the subscription ends). Close it when done.
func (s *Store) Subscribe(ctx context.Context) (*Subscription, error) {
	sub := &Subscription{st: s, end: make(chan struct{})}
	if s.db.engine == postgresEngine {
		conn, err := pgx.Connect(ctx, s.db.url)
		if err != nil {
			return nil, fmt.Errorf("subscribe to live messages: %w", err)
		}
		if _, err := conn.Exec(ctx, "LISTEN "+liveChannel); err != nil {
			conn.Close(context.Background())
			return nil, fmt.Errorf("subscribe to live messages: %w", err)
		}
		sub.conn = conn
	} else {
		sub.c = make(chan []byte, liveBacklog)
	}
	h := &s.live
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		sub.stop(ErrClosed)
		return nil, fmt.Errorf("subscribe to live messages: %w", ErrClosed)
	}
	if h.subs == nil {
		h.subs = map[*Subscription]struct{}{}
	}
	h.subs[sub] = struct{}{}
	return sub, nil
}

// Next waits for the next message. It fails with ErrLiveGap when the subscription fell
// behind or lost its connection, ErrClosed once it or its store is closed, or ctx's error;
// a subscription that failed stays ended. One goroutine at a time calls Next.
func (sub *Subscription) Next(ctx context.Context) ([]byte, error) {
	if err := sub.ended(); err != nil {
		return nil, err
	}
	if sub.c == nil {
		return sub.notification(ctx)
	}
	select {
	case msg := <-sub.c:
		return msg, nil
	default:
	}
	select {
	case msg := <-sub.c:
		return msg, nil
	case <-sub.end:
		return nil, sub.ended()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// notification waits on the LISTENing connection, holding it: Close ends the wait
// (pgx closes a connection whose wait was cancelled) and then closes the connection.
func (sub *Subscription) notification(ctx context.Context) ([]byte, error) {
	sub.connMu.Lock()
	defer sub.connMu.Unlock()
	if sub.conn == nil {
		return nil, sub.ended()
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-sub.end:
			cancel()
		case <-wctx.Done():
		}
	}()
	n, err := sub.conn.WaitForNotification(wctx)
	if err == nil {
		return []byte(n.Payload), nil
	}
	switch {
	case sub.ended() != nil:
	case ctx.Err() != nil:
		sub.mark(ctx.Err())
	default:
		sub.mark(fmt.Errorf("%w: %v", ErrLiveGap, err))
	}
	sub.closeConn()
	return nil, sub.ended()
}

// Close ends the subscription.
func (sub *Subscription) Close() {
	h := &sub.st.live
	h.mu.Lock()
	delete(h.subs, sub)
	h.mu.Unlock()
	sub.stop(ErrClosed)
}

func (sub *Subscription) ended() error {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	return sub.err
}

// mark ends the subscription with err; the first reason is kept.
func (sub *Subscription) mark(err error) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if sub.err == nil {
		sub.err = err
		close(sub.end)
	}
}

// stop ends the subscription and frees its connection, once a Next waiting on it
// returned.
func (sub *Subscription) stop(err error) {
	sub.mark(err)
	if sub.c != nil {
		return
	}
	sub.connMu.Lock()
	defer sub.connMu.Unlock()
	sub.closeConn()
}

// closeConn closes the connection; the caller holds connMu.
func (sub *Subscription) closeConn() {
	if sub.conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	sub.conn.Close(ctx)
	sub.conn = nil
}

// closeLive ends every subscription (the store is closing).
func (s *Store) closeLive() {
	h := &s.live
	h.mu.Lock()
	h.closed = true
	subs := h.subs
	h.subs = nil
	h.mu.Unlock()
	for sub := range subs {
		sub.stop(ErrClosed)
	}
}
