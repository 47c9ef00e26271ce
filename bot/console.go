package bot

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/immunity-app/immunity/pipeline"
	"github.com/immunity-app/immunity/pipeline/config"
)

// consoleIcons draw the thread's icons in a terminal.
var consoleIcons = map[string]string{
	IconPending: "·", IconRunning: "▶", IconWaiting: "⏸", IconOK: "✓", IconFailed: "✗",
	IconSkipped: "–", IconBack: "↩", IconWarning: "!", IconLock: "🔒", IconUnlock: "🔓", IconGo: "→",
}

// ConsoleThread is a pipeline.Listener that writes each run's thread as text lines: what
// Slack would show, for when no Slack token is configured (the demo, a terminal). The
// root message is a status line, printed again whenever it changes; posts follow it.
// Notify only queues the event; one goroutine writes.
type ConsoleThread struct {
	w    io.Writer
	cfg  *config.Config
	logs *LogBook

	mu     sync.Mutex
	queue  []pipeline.Event
	wake   chan struct{}
	done   chan struct{}
	closed bool
	idle   *sync.Cond
	busy   bool
	status map[int64]string          // run -> last status line printed
	posted map[int64]map[string]bool // run -> post keys printed
}

// NewConsoleThread writes threads to w. cfg (may be nil) tells production regions apart.
func NewConsoleThread(w io.Writer, cfg *config.Config) *ConsoleThread {
	c := &ConsoleThread{w: w, cfg: cfg, logs: NewLogBook(50), wake: make(chan struct{}, 1), done: make(chan struct{}),
		status: map[int64]string{}, posted: map[int64]map[string]bool{}}
	c.idle = sync.NewCond(&c.mu)
	go c.loop()
	return c
}

// Notify queues the event and returns.
func (c *ConsoleThread) Notify(ctx context.Context, ev pipeline.Event) {
	c.mu.Lock()
	if !c.closed {
		c.queue = append(c.queue, ev)
	}
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Flush waits until every queued event is written.
func (c *ConsoleThread) Flush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.queue) > 0 || c.busy {
		c.idle.Wait()
	}
}

// Close writes what is queued and stops.
func (c *ConsoleThread) Close() {
	c.Flush()
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		close(c.done)
	}
	c.mu.Unlock()
}

func (c *ConsoleThread) loop() {
	for {
		select {
		case <-c.wake:
		case <-c.done:
			return
		}
		for {
			c.mu.Lock()
			if len(c.queue) == 0 {
				c.busy = false
				c.idle.Broadcast()
				c.mu.Unlock()
				break
			}
			ev := c.queue[0]
			c.queue = c.queue[1:]
			c.busy = true
			c.mu.Unlock()
			c.write(ev)
		}
	}
}

func (c *ConsoleThread) write(ev pipeline.Event) {
	if ev.Kind == pipeline.Logged {
		c.logs.Add(ev)
		return
	}
	var b strings.Builder
	if ev.Run.ID != 0 {
		c.writeRoot(&b, RootOf(ev.Run))
	}
	var app *config.App
	if c.cfg != nil {
		app, _ = c.cfg.App(ev.App)
	}
	for _, p := range PostsFor(app, ev, func(region string) []string { return c.logs.Lines(ev.Run.ID, region) }) {
		if p.RunID != 0 && p.Key != "" {
			if c.posted[p.RunID] == nil {
				c.posted[p.RunID] = map[string]bool{}
			}
			if c.posted[p.RunID][p.Key] {
				continue
			}
			c.posted[p.RunID][p.Key] = true
		}
		WritePost(&b, p)
	}
	io.WriteString(c.w, b.String())
}

// writeRoot prints the header once per run and the status line when it changed.
func (c *ConsoleThread) writeRoot(b *strings.Builder, r Root) {
	line := StatusLine(r)
	if c.status[r.RunID] == line {
		return
	}
	if _, seen := c.status[r.RunID]; !seen {
		fmt.Fprintf(b, "%s #%d %s\n", r.App, r.RunID, Header(r))
	}
	c.status[r.RunID] = line
	fmt.Fprintf(b, "%s #%d   %s\n", r.App, r.RunID, line)
}

// Header is the root message's first line: commit, subject, author, how it started.
func Header(r Root) string {
	h := short(r.SHA)
	if r.Subject != "" {
		h += fmt.Sprintf(" %q", clipLine(r.Subject))
	}
	if r.Author != "" {
		h += " by " + r.Author
	}
	if r.Trigger != "" {
		h += " (" + r.Trigger + ")"
	}
	return h
}

// StatusLine is the root message's live line: the run's state and each region's.
func StatusLine(r Root) string {
	parts := []string{r.State.Words()}
	for _, l := range r.Regions {
		parts = append(parts, fmt.Sprintf("%s %s %s", l.Region, consoleIcons[l.Icon], l.Text))
	}
	return strings.Join(parts, " · ")
}

// WritePost prints a post as text lines: the line, its detail and verdict indented, and
// the commands its buttons would run.
func WritePost(b *strings.Builder, p Post) {
	prefix := p.App
	if p.RunID != 0 {
		prefix = fmt.Sprintf("%s #%d", p.App, p.RunID)
	}
	fmt.Fprintf(b, "%s %s %s\n", prefix, consoleIcons[p.Icon], p.Text)
	for _, l := range p.Detail {
		fmt.Fprintf(b, "%s │ %s\n", prefix, l)
	}
	if p.Verdict != nil {
		fmt.Fprintf(b, "%s │ %s\n", prefix, VerdictSummary(*p.Verdict))
		for _, l := range strings.Split(VerdictTable(*p.Verdict), "\n") {
			fmt.Fprintf(b, "%s │ %s\n", prefix, l)
		}
	}
	for _, a := range p.Actions {
		fmt.Fprintf(b, "%s   %s: `%s`\n", prefix, a.Label, a.Command)
	}
}
