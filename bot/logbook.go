package bot

import (
	"sync"

	"github.com/immunity-app/immunity/pipeline"
)

// LogBook keeps the last lines of each run's log per region, from which a failure's
// first useful lines are picked. Lines of a finished run are forgotten with Forget.
type LogBook struct {
	max   int
	mu    sync.Mutex
	lines map[logKey][]string
}

type logKey struct {
	run    int64
	region string
}

// NewLogBook keeps max lines per run and region.
func NewLogBook(max int) *LogBook { return &LogBook{max: max, lines: map[logKey][]string{}} }

// Add records a log event's line (with its host, when it has one).
func (l *LogBook) Add(ev pipeline.Event) {
	if ev.Run.ID == 0 || ev.Message == "" {
		return
	}
	line := ev.Message
	if ev.Host != "" {
		line = ev.Host + ": " + line
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	k := logKey{ev.Run.ID, ev.Region}
	ls := append(l.lines[k], line)
	if len(ls) > l.max {
		ls = ls[len(ls)-l.max:]
	}
	l.lines[k] = ls
}

// Lines returns a copy of a run's recent lines for a region ("" = the run's own lines).
func (l *LogBook) Lines(run int64, region string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines[logKey{run, region}]...)
}

// Forget drops a run's lines.
func (l *LogBook) Forget(run int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k := range l.lines {
		if k.run == run {
			delete(l.lines, k)
		}
	}
}
