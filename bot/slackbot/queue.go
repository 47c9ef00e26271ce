package slackbot

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/slack-go/slack"

	"github.com/immunity-app/immunity/internal/wait"
	"github.com/immunity-app/immunity/pipeline"
)

// eventQueue hands events to one goroutine in order; push never blocks.
type eventQueue struct {
	handle func(pipeline.Event)
	mu     sync.Mutex
	cond   *sync.Cond
	items  []pipeline.Event
	busy   bool
	closed bool
}

func newEventQueue(handle func(pipeline.Event)) *eventQueue {
	q := &eventQueue{handle: handle}
	q.cond = sync.NewCond(&q.mu)
	go q.loop()
	return q
}

func (q *eventQueue) push(ev pipeline.Event) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.closed {
		q.items = append(q.items, ev)
		q.cond.Broadcast()
	}
}

func (q *eventQueue) loop() {
	q.mu.Lock()
	defer q.mu.Unlock()
	for {
		for len(q.items) == 0 && !q.closed {
			q.busy = false
			q.cond.Broadcast()
			q.cond.Wait()
		}
		if len(q.items) == 0 {
			q.busy = false
			q.cond.Broadcast()
			return
		}
		ev := q.items[0]
		q.items = q.items[1:]
		q.busy = true
		q.mu.Unlock()
		q.handle(ev)
		q.mu.Lock()
	}
}

// flush waits until every event pushed so far is handled.
func (q *eventQueue) flush() {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.items) > 0 || q.busy {
		q.cond.Wait()
	}
}

// close handles what is queued and stops the goroutine.
func (q *eventQueue) close() {
	q.flush()
	q.mu.Lock()
	q.closed = true
	q.cond.Broadcast()
	q.mu.Unlock()
}

// job is one Slack call; it is retried while Slack says the rate limit is exceeded.
type job struct {
	what string
	do   func(ctx context.Context) error
}

// maxRateLimitWaits bounds how often one call waits out a rate limit before it is dropped.
const maxRateLimitWaits = 8

// poster runs Slack calls one channel at a time, in order, each channel on its own
// goroutine, so a rate-limited channel holds back only itself and the pipeline never waits.
type poster struct {
	ctx    context.Context
	log    *slog.Logger
	waited func(time.Duration) // told of each rate-limit wait; may be nil
	mu     sync.Mutex
	cond   *sync.Cond
	queues map[string][]job
	active map[string]bool
	wg     sync.WaitGroup
}

func newPoster(ctx context.Context, log *slog.Logger) *poster {
	p := &poster{ctx: ctx, log: log, queues: map[string][]job{}, active: map[string]bool{}}
	p.cond = sync.NewCond(&p.mu)
	return p
}

// enqueue adds a call to a channel's queue and returns at once.
func (p *poster) enqueue(channel, what string, do func(ctx context.Context) error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.queues[channel] = append(p.queues[channel], job{what, do})
	if !p.active[channel] {
		p.active[channel] = true
		p.wg.Add(1)
		go p.drain(channel)
	}
}

func (p *poster) drain(channel string) {
	defer p.wg.Done()
	for {
		p.mu.Lock()
		q := p.queues[channel]
		if len(q) == 0 {
			delete(p.queues, channel)
			p.active[channel] = false
			p.cond.Broadcast()
			p.mu.Unlock()
			return
		}
		j := q[0]
		p.queues[channel] = q[1:]
		p.mu.Unlock()
		p.run(channel, j)
	}
}

// run makes one call, waiting out rate limits; other errors are logged and the call dropped
// (a post is not safely repeatable: Slack may have shown it).
func (p *poster) run(channel string, j job) {
	for waits := 0; ; waits++ {
		err := j.do(p.ctx)
		var rl *slack.RateLimitedError
		if errors.As(err, &rl) && waits < maxRateLimitWaits {
			p.log.Info("slack rate limited; waiting", "channel", channel, "call", j.what, "retry_after", rl.RetryAfter)
			if p.waited != nil {
				p.waited(rl.RetryAfter)
			}
			if wait.Sleep(p.ctx, max(rl.RetryAfter, time.Second)) != nil {
				return
			}
			continue
		}
		if err != nil {
			p.log.Warn("slack call failed", "channel", channel, "call", j.what, "err", err)
		}
		return
	}
}

// flush waits until every queue is empty, or ctx ends.
func (p *poster) flush(ctx context.Context) {
	stop := context.AfterFunc(ctx, func() {
		p.mu.Lock()
		p.cond.Broadcast()
		p.mu.Unlock()
	})
	defer stop()
	p.mu.Lock()
	defer p.mu.Unlock()
	for ctx.Err() == nil && p.busy() {
		p.cond.Wait()
	}
}

func (p *poster) busy() bool {
	for _, a := range p.active {
		if a {
			return true
		}
	}
	return false
}

func (p *poster) wait() { p.wg.Wait() }
