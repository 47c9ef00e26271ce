package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"
)

// DeliveryLog records GitHub webhook deliveries with group commit, for the webhook
// endpoint: a delivery must be persisted before it is acknowledged, and GitHub may send
// thousands a second.
//
// One goroutine owns a connection of its own (so an acknowledgement never waits for a
// pooled connection held by other work) with its statements prepared once. It takes
// every write waiting (new deliveries and deliveries finished), makes them in one
// transaction and then answers each caller: one commit for a whole batch, one statement
// for a new delivery (INSERT … ON CONFLICT DO NOTHING; only a redelivery or a duplicate
// takes a second look). Its connection does not checkpoint the WAL into the database
// after a commit (SQLite's default, which would make that commit's callers wait for the
// checkpoint's fsync): a checkpoint runs beside it on another connection instead, every
// checkpointEvery commits, so acknowledgements never wait for one. A finish (how a
// delivery's work ended) goes with the next record's commit, or on its own after
// finishAfter: at a steady trickle of deliveries that halves the commits.
type DeliveryLog struct {
	s     *Store
	conn  *sql.Conn
	stmts map[string]*sql.Stmt
	ops   chan deliveryOp
	done  chan struct{}
	once  sync.Once

	checkpoint chan struct{} // asks the checkpointer for a checkpoint
	commits    int
}

// checkpointEvery is how many commits of the log go between checkpoints.
const checkpointEvery = 200

type deliveryOp struct {
	finish bool // else record
	d      Delivery
	answer chan recorded
}

type recorded struct {
	fresh bool
	err   error
}

const (
	sqlInsertDelivery = `INSERT INTO github_deliveries (id, event, action, repo, dedupe_key, state, received_at) VALUES (?, ?, ?, ?, ?, 'received', ?) ON CONFLICT DO NOTHING`
	sqlDeliveryState  = `SELECT state FROM github_deliveries WHERE id = ?`
	sqlRetryDelivery  = `UPDATE github_deliveries SET state = 'received', detail = '', finished_at = 0 WHERE id = ? AND state = 'failed'`
	sqlDuplicate      = `INSERT INTO github_deliveries (id, event, action, repo, dedupe_key, state, received_at) VALUES (?, ?, ?, ?, NULL, 'duplicate', ?) ON CONFLICT DO NOTHING`
	sqlFinishDelivery = `UPDATE github_deliveries SET state = ?, detail = ?, finished_at = ? WHERE id = ?`
)

// maxBatch bounds the writes of one transaction; lingerFor is how long a batch waits for
// more writes once it has a record; finishAfter is how long finishes wait for a record
// to go with (nobody answers GitHub on a finish: it may wait, and saves a commit).
const (
	maxBatch    = 512
	lingerFor   = 300 * time.Microsecond
	finishAfter = 5 * time.Millisecond
)

// OpenDeliveryLog starts the delivery log on a connection of its own; Close drains and
// stops it.
func (s *Store) OpenDeliveryLog(ctx context.Context) (*DeliveryLog, error) {
	l := &DeliveryLog{s: s, ops: make(chan deliveryOp, 4096), done: make(chan struct{}), checkpoint: make(chan struct{}, 1)}
	if err := l.connect(ctx); err != nil {
		return nil, err
	}
	go l.loop()
	if s.db.engine == sqliteEngine {
		go l.checkpoints()
	}
	return l, nil
}

// connect takes the log's connection from the pool and prepares its statements on it.
func (l *DeliveryLog) connect(ctx context.Context) error {
	conn, err := l.s.db.pool.Conn(ctx)
	if err != nil {
		return fmt.Errorf("delivery log: %w", err)
	}
	if l.s.db.engine == sqliteEngine {
		if _, err := conn.ExecContext(ctx, `PRAGMA wal_autocheckpoint = 0`); err != nil {
			conn.Close()
			return fmt.Errorf("delivery log: %w", err)
		}
	}
	stmts := map[string]*sql.Stmt{}
	for _, q := range []string{sqlInsertDelivery, sqlDeliveryState, sqlRetryDelivery, sqlDuplicate, sqlFinishDelivery} {
		st, err := conn.PrepareContext(ctx, l.s.db.q(q))
		if err != nil {
			conn.Close()
			return fmt.Errorf("delivery log: prepare: %w", err)
		}
		stmts[q] = st
	}
	l.conn, l.stmts = conn, stmts
	return nil
}

// disconnect lets the log's connection go (Close, or a connection found dead); the next
// write takes a new one.
func (l *DeliveryLog) disconnect() {
	for _, st := range l.stmts {
		st.Close()
	}
	if l.conn != nil {
		l.conn.Close()
	}
	l.conn, l.stmts = nil, nil
}

// Record persists a delivery before it is acted on and returns once it is committed:
// false when the delivery id was seen before (unless its work failed: a redelivery then
// tries again), or another delivery carried the same dedupe key (the duplicate is still
// recorded, with state duplicate, for the log).
func (l *DeliveryLog) Record(ctx context.Context, d Delivery) (fresh bool, err error) {
	return l.do(ctx, deliveryOp{d: d})
}

// Finish records how handling a delivery ended (done or failed, with a detail) and
// returns once it is committed.
func (l *DeliveryLog) Finish(ctx context.Context, id, state, detail string) error {
	_, err := l.do(ctx, deliveryOp{finish: true, d: Delivery{ID: id, State: state, Detail: detail}})
	return err
}

func (l *DeliveryLog) do(ctx context.Context, op deliveryOp) (bool, error) {
	op.answer = make(chan recorded, 1)
	select {
	case l.ops <- op:
	case <-ctx.Done():
		return false, fmt.Errorf("delivery %s: %w", op.d.ID, ctx.Err())
	}
	select {
	case r := <-op.answer:
		return r.fresh, r.err
	case <-ctx.Done():
		return false, fmt.Errorf("delivery %s: %w", op.d.ID, ctx.Err())
	}
}

// Close makes the writes still queued and stops. Nothing may be recorded after it.
func (l *DeliveryLog) Close() error {
	l.once.Do(func() {
		close(l.ops)
		<-l.done
		l.disconnect()
	})
	return nil
}

// checkpoints copies the WAL into the database when asked, on a pooled connection, without
// holding the log's writer up (PASSIVE: it does what it can without waiting for anyone).
func (l *DeliveryLog) checkpoints() {
	for range l.checkpoint {
		l.s.db.ExecContext(context.Background(), `PRAGMA wal_checkpoint(PASSIVE)`)
	}
}

// begin is the statement that opens a write transaction: on SQLite it takes the write lock
// at once, so a batch never fails half-way on a busy database.
func (l *DeliveryLog) begin() string {
	if l.s.db.engine == sqliteEngine {
		return `BEGIN IMMEDIATE`
	}
	return `BEGIN`
}

func (l *DeliveryLog) loop() {
	defer close(l.done)
	defer close(l.checkpoint)
	batch := make([]deliveryOp, 0, maxBatch)
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	finishes := time.NewTimer(time.Hour)
	finishes.Stop()
	for {
		// Wait for the first write; while only finishes are waiting, for a record to
		// carry them or for finishAfter to pass.
		var op deliveryOp
		var ok bool
		if len(batch) == 0 {
			op, ok = <-l.ops
		} else {
			select {
			case op, ok = <-l.ops:
			case <-finishes.C:
				l.commit(batch)
				batch = batch[:0]
				continue
			}
		}
		if !ok {
			if len(batch) > 0 {
				l.commit(batch)
			}
			return
		}
		batch = append(batch, op)
		if op.finish && len(batch) < maxBatch {
			if len(batch) == 1 {
				finishes.Reset(finishAfter)
			}
			continue
		}
		// A record: gather what is waiting, then give writes already on their way a
		// moment to join (a commit costs far more than a row, so a bigger batch is
		// cheaper per delivery).
		linger.Reset(lingerFor)
		closed := false
	more:
		for len(batch) < maxBatch {
			select {
			case op, ok := <-l.ops:
				if !ok {
					closed = true
					break more
				}
				batch = append(batch, op)
			case <-linger.C:
				break more
			}
		}
		stop(linger)
		stop(finishes)
		l.commit(batch)
		batch = batch[:0]
		if closed {
			return
		}
	}
}

// stop stops t and drains its channel, so that a Reset starts afresh.
func stop(t *time.Timer) {
	if !t.Stop() {
		select {
		case <-t.C:
		default:
		}
	}
}

// commit writes a batch and asks for a checkpoint every checkpointEvery commits.
func (l *DeliveryLog) commit(batch []deliveryOp) {
	l.write(batch)
	if l.commits++; l.commits%checkpointEvery == 0 && l.s.db.engine == sqliteEngine {
		select {
		case l.checkpoint <- struct{}{}:
		default: // one is running
		}
	}
}

// write commits a batch and answers each of its callers. A failed transaction fails
// every one of them (GitHub redelivers what was not acknowledged). A connection found dead
// after a failure (the database restarted, or ended the session) is let go, and the next
// batch takes a new one; the failed batch is not tried again, as its commit may have
// happened.
func (l *DeliveryLog) write(batch []deliveryOp) {
	ctx := context.Background()
	fresh := make([]bool, len(batch))
	var err error
	if l.conn == nil {
		err = l.connect(ctx)
	}
	if err == nil {
		err = l.tx(ctx, func() error {
			for i, op := range batch {
				f, err := l.apply(ctx, op)
				if err != nil {
					return err
				}
				fresh[i] = f
			}
			return nil
		})
		if err != nil && !l.alive() {
			l.disconnect()
		}
	}
	for i, op := range batch {
		if err != nil {
			op.answer <- recorded{err: fmt.Errorf("delivery %s: %w", op.d.ID, err)}
		} else {
			op.answer <- recorded{fresh: fresh[i]}
		}
	}
}

// tx runs fn between BEGIN (IMMEDIATE) and COMMIT on the log's own connection. The
// transaction is not a *sql.Tx: database/sql prepares a statement anew for every Tx it
// is used in, and the log's statements are prepared once on its connection.
func (l *DeliveryLog) tx(ctx context.Context, fn func() error) error {
	if _, err := l.conn.ExecContext(ctx, l.begin()); err != nil {
		return err
	}
	if err := fn(); err != nil {
		l.conn.ExecContext(ctx, `ROLLBACK`)
		return err
	}
	if _, err := l.conn.ExecContext(ctx, `COMMIT`); err != nil {
		l.conn.ExecContext(ctx, `ROLLBACK`)
		return err
	}
	return nil
}

func (l *DeliveryLog) stmt(q string) *sql.Stmt { return l.stmts[q] }

// alive reports whether the log's connection still answers.
func (l *DeliveryLog) alive() bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return l.conn.PingContext(ctx) == nil
}

// apply makes one write of a batch; for a record it says whether the delivery is fresh.
func (l *DeliveryLog) apply(ctx context.Context, op deliveryOp) (bool, error) {
	now := l.s.nowNS()
	if op.finish {
		_, err := l.stmt(sqlFinishDelivery).ExecContext(ctx, op.d.State, op.d.Detail, now, op.d.ID)
		return false, err
	}
	d := op.d
	key := sql.NullString{String: d.DedupeKey, Valid: d.DedupeKey != ""}
	res, err := l.stmt(sqlInsertDelivery).ExecContext(ctx, d.ID, d.Event, d.Action, d.Repo, key, now)
	if err != nil {
		return false, err
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return true, nil
	}
	// The id was seen before (fresh again only if its work failed), or another delivery
	// carried the same dedupe key (recorded as a duplicate).
	var prev string
	err = l.stmt(sqlDeliveryState).QueryRowContext(ctx, d.ID).Scan(&prev)
	switch {
	case err == nil:
		res, err := l.stmt(sqlRetryDelivery).ExecContext(ctx, d.ID)
		if err != nil {
			return false, err
		}
		n, _ := res.RowsAffected()
		return n == 1, nil
	case !errors.Is(err, sql.ErrNoRows):
		return false, err
	}
	_, err = l.stmt(sqlDuplicate).ExecContext(ctx, d.ID, d.Event, d.Action, d.Repo, now)
	return false, err
}
