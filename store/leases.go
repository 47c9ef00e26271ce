package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"
)

// A Lease is the right to do one piece of work that must happen once however many
// replicas share the database (delivering an outbox, ...): its name, who holds it, until
// when, and its fencing token. ClaimLease takes a free or expired lease (a new holder gets a
// larger token), RenewLease extends it while the holder works (its heartbeat), and every write
// of the work checks the token in the same statement (fenced writes: OutboxDone, ...), so
// a holder that stalled past its expiry and was taken over writes nothing. SQLite runs the
// same code with one replica.
type Lease struct {
	Name    string
	Holder  string
	Token   int64
	Expires time.Time
}

// WithLease makes every store write done with the context a fenced write of l's work:
// each runs in a transaction that first checks that l is still held (same token, not
// expired) and changes nothing, answering ErrLeaseLost, once it is not. The engine does
// an app's work under the app's lease this way, so a replica that lost the lease (it
// stalled, or the database dropped it) writes over nothing its successor did.
func WithLease(ctx context.Context, l Lease) context.Context {
	return context.WithValue(ctx, leaseKey{}, l)
}

type leaseKey struct{}

// LeaseOf is the lease the work of ctx is done under (WithLease), if any.
func LeaseOf(ctx context.Context) (Lease, bool) { return leaseOf(ctx) }

func leaseOf(ctx context.Context) (Lease, bool) {
	l, ok := ctx.Value(leaseKey{}).(Lease)
	return l, ok && l.Name != ""
}

// unfenced is ctx without a lease: the lease's own rows are claimed and renewed without
// checking it.
func unfenced(ctx context.Context) context.Context {
	if _, ok := leaseOf(ctx); ok {
		return context.WithValue(ctx, leaseKey{}, Lease{})
	}
	return ctx
}

// ErrLeaseLost is returned by a fenced write or a renewal whose lease another holder
// took over (or that expired).
var ErrLeaseLost = errors.New("lease lost")

// ClaimLease takes the lease name for holder until ttl from now if it is free, expired or
// already holder's (then it is renewed, token unchanged). ok is false when another holder
// has it; a claim racing another replica's for the same lease gives up at once rather
// than wait (PostgreSQL: FOR UPDATE SKIP LOCKED).
func (s *Store) ClaimLease(ctx context.Context, name, holder string, ttl time.Duration) (l Lease, ok bool, err error) {
	ctx = unfenced(ctx)
	now := s.leaseNS()
	exp := now + int64(ttl)
	err = s.tx(ctx, func(tx tx) error {
		var cur Lease
		var curExp int64
		err := tx.QueryRowContext(ctx, `SELECT holder, token, expires_at FROM leases WHERE name = ?`+s.db.engine.skipLocked(), name).
			Scan(&cur.Holder, &cur.Token, &curExp)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			// Free, or locked by a replica claiming it right now: an insert decides.
			res, err := tx.ExecContext(ctx, `INSERT INTO leases (name, holder, token, expires_at) VALUES (?, ?, 1, ?) ON CONFLICT (name) DO NOTHING`, name, holder, exp)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 1 {
				l, ok = Lease{Name: name, Holder: holder, Token: 1, Expires: fromNS(exp)}, true
			}
			return nil
		case err != nil:
			return err
		case cur.Holder != holder && curExp > now:
			return nil // held
		}
		token := cur.Token
		if cur.Holder != holder || curExp <= now {
			token++ // a new tenure, even for the same holder after it expired
		}
		if _, err := tx.ExecContext(ctx, `UPDATE leases SET holder = ?, token = ?, expires_at = ? WHERE name = ?`, holder, token, exp, name); err != nil {
			return err
		}
		l, ok = Lease{Name: name, Holder: holder, Token: token, Expires: fromNS(exp)}, true
		return nil
	})
	if err != nil {
		return Lease{}, false, fmt.Errorf("claim lease %s: %w", name, err)
	}
	return l, ok, nil
}

// RenewLease extends a lease still held (same token, not expired) to ttl from now.
func (s *Store) RenewLease(ctx context.Context, l Lease, ttl time.Duration) (Lease, error) {
	ctx = unfenced(ctx)
	now := s.leaseNS()
	res, err := s.db.ExecContext(ctx, `UPDATE leases SET expires_at = ? WHERE name = ? AND token = ? AND expires_at > ?`, now+int64(ttl), l.Name, l.Token, now)
	if err != nil {
		return l, fmt.Errorf("renew lease %s: %w", l.Name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return l, fmt.Errorf("renew lease %s (token %d): %w", l.Name, l.Token, ErrLeaseLost)
	}
	l.Expires = fromNS(now + int64(ttl))
	return l, nil
}

// ReadLease reads a lease as the database has it now: who holds it, its token and its
// expiry (a lease never claimed is just its name).
func (s *Store) ReadLease(ctx context.Context, name string) (Lease, error) {
	l := Lease{Name: name}
	var exp int64
	err := s.db.QueryRowContext(ctx, `SELECT holder, token, expires_at FROM leases WHERE name = ?`, name).Scan(&l.Holder, &l.Token, &exp)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return l, nil
	case err != nil:
		return l, fmt.Errorf("read lease %s: %w", name, err)
	}
	l.Expires = fromNS(exp)
	return l, nil
}

// ReleaseLease gives a held lease up, so that another holder need not wait for its expiry.
func (s *Store) ReleaseLease(ctx context.Context, l Lease) error {
	ctx = unfenced(ctx)
	if _, err := s.db.ExecContext(ctx, `UPDATE leases SET expires_at = 0 WHERE name = ? AND token = ?`, l.Name, l.Token); err != nil {
		return fmt.Errorf("release lease %s: %w", l.Name, err)
	}
	return nil
}

// fence is the condition a fenced write adds to its WHERE clause, with its arguments: the
// lease is still held with this token and has not expired. On PostgreSQL the lease row
// is share-locked until the write commits, so a takeover waits for it (no longer than the
// lease's time when the writer is paused: db.session), and a write that finds the lease
// taken over changes nothing.
func (s *Store) fence(l Lease) (string, []any) {
	return `EXISTS (SELECT 1 FROM leases WHERE name = ? AND token = ? AND expires_at > ?` + s.db.engine.forShare() + `)`,
		[]any{l.Name, l.Token, s.leaseNS()}
}

// fenced runs a fenced write: ErrLeaseLost when it changed nothing because the lease is
// no longer held; otherwise how many rows it changed.
func (s *Store) fenced(ctx context.Context, l Lease, what, query string, args ...any) (int64, error) {
	ctx = unfenced(ctx)
	cond, fargs := s.fence(l)
	res, err := s.db.ExecContext(ctx, query+` AND `+cond, append(args, fargs...)...)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	if n == 0 {
		var held int
		if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM leases WHERE name = ? AND token = ? AND expires_at > ?`, fargs...).Scan(&held); err != nil {
			return 0, fmt.Errorf("%s: %w", what, err)
		}
		if held == 0 {
			return 0, fmt.Errorf("%s (lease %s, token %d): %w", what, l.Name, l.Token, ErrLeaseLost)
		}
	}
	return n, nil
}

// SetLeaseClock replaces the clock of leases and fences (tests of a server whose clock,
// or pause, puts it past another's lease).
func (s *Store) SetLeaseClock(now func() time.Time) { s.leaseNow = now }

// DefaultLeaseTTL is how long a lease lasts without renewal unless SetLeaseTTL says
// otherwise: a replica that dies holding one is taken over within two of these.
const DefaultLeaseTTL = 15 * time.Second

// SetLeaseTTL sets how long the leases this process holds last without renewal (the
// server's server.lease) before any is held; 0 keeps DefaultLeaseTTL. On PostgreSQL it is
// also how long a session of this store may sit idle inside a transaction before the
// server ends it (db.session).
func (s *Store) SetLeaseTTL(d time.Duration) {
	if d > 0 {
		s.leaseTTL = d
		s.db.setIdleInTransaction(d)
	}
}

// LeaseTTL is how long the leases this process holds last without renewal.
func (s *Store) LeaseTTL() time.Duration { return s.leaseTTL }

// Holding keeps a lease for its holder: it claims it, renews it every third of its ttl
// and claims it again whenever it is free, until ctx ends; then it releases it.
type Holding struct {
	s      *Store
	name   string
	holder string
	ttl    time.Duration
	done   chan struct{}

	mu    sync.Mutex
	lease Lease
	held  bool
}

// Hold starts holding the lease name for this replica (Store.Replica).
func (s *Store) Hold(ctx context.Context, name string, ttl time.Duration) *Holding {
	h := &Holding{s: s, name: name, holder: s.replica, ttl: ttl, done: make(chan struct{})}
	h.beat(ctx)
	go h.loop(ctx)
	return h
}

// Lease returns the lease while it is held with at least a third of its ttl left: work
// begun with it ends (or is fenced off) before another holder may claim it.
func (h *Holding) Lease() (Lease, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.held || time.Until(h.lease.Expires) < h.ttl/3 {
		return Lease{}, false
	}
	return h.lease, true
}

// Done is closed once the holding stopped and its lease was released.
func (h *Holding) Done() <-chan struct{} { return h.done }

func (h *Holding) loop(ctx context.Context) {
	defer close(h.done)
	t := time.NewTicker(h.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			h.mu.Lock()
			l, held := h.lease, h.held
			h.held = false
			h.mu.Unlock()
			if held {
				rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				h.s.ReleaseLease(rctx, l)
				cancel()
			}
			return
		case <-t.C:
			h.beat(ctx)
		}
	}
}

// beat renews the lease held, or claims it.
func (h *Holding) beat(ctx context.Context) {
	h.mu.Lock()
	l, held := h.lease, h.held
	h.mu.Unlock()
	var err error
	if held {
		if l, err = h.s.RenewLease(ctx, l, h.ttl); err != nil {
			held = false
		}
	}
	if !held {
		l, held, err = h.s.ClaimLease(ctx, h.name, h.holder, h.ttl)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if err != nil && !errors.Is(err, ErrLeaseLost) {
		// A store that cannot be reached keeps the lease until it expires, no longer.
		return
	}
	h.lease, h.held = l, held
}
