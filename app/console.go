package app

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/immunity-app/immunity/pipeline"
)

// Console is a reporter that prints every transition with a message as one line.
type Console struct {
	mu sync.Mutex
	w  io.Writer
}

// NewConsole reports to w.
func NewConsole(w io.Writer) *Console { return &Console{w: w} }

// Notify prints the event.
func (c *Console) Notify(_ context.Context, ev pipeline.Event) {
	if ev.Message == "" {
		return
	}
	where := ev.App
	if ev.Run.ID != 0 {
		where = fmt.Sprintf("%s run %d", ev.App, ev.Run.ID)
	}
	if ev.Region != "" {
		where += " [" + ev.Region
		if ev.Host != "" {
			where += "/" + ev.Host
		}
		where += "]"
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	fmt.Fprintf(c.w, "%s %-28s %s\n", ev.Time.Format("15:04:05.0"), where, ev.Message)
}
