package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/immunity-app/immunity/internal/logctx"
	"github.com/immunity-app/immunity/pipeline"
)

// NewLogger returns the server's logger writing to w: format "text" (the default) or
// "json" (one object a line, for log collectors), at level debug, info (the default),
// warn or error. Formats and levels come from --log-format, IMMUNITY_LOG_FORMAT and
// IMMUNITY_LOG_LEVEL. A line logged with the context of a run's work carries the run's
// app, run, region, host and release (internal/logctx).
func NewLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if level != "" {
		if err := lv.UnmarshalText([]byte(level)); err != nil {
			return nil, fmt.Errorf("log level %q: expected debug, info, warn or error", level)
		}
	}
	o := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "", "text":
		return slog.New(logctx.Handler(slog.NewTextHandler(w, o))), nil
	case "json":
		return slog.New(logctx.Handler(slog.NewJSONHandler(w, o))), nil
	}
	return nil, fmt.Errorf("log format %q: expected text or json", format)
}

// EventLog is a reporter that writes every transition with a message as one log line
// carrying the app, run, region, host and release it is about, so a log collector can
// follow a run (the console is the same for people reading a terminal).
type EventLog struct{ log *slog.Logger }

// NewEventLog reports to log.
func NewEventLog(log *slog.Logger) EventLog { return EventLog{log: log} }

// Notify writes the event.
func (l EventLog) Notify(ctx context.Context, ev pipeline.Event) {
	if ev.Message == "" {
		return
	}
	attrs := make([]slog.Attr, 0, 8)
	attrs = append(attrs, slog.String("event", string(ev.Kind)), slog.String("app", ev.App))
	if ev.Run.ID != 0 {
		attrs = append(attrs, slog.Int64("run", ev.Run.ID))
	}
	if ev.Region != "" {
		attrs = append(attrs, slog.String("region", ev.Region))
	}
	if ev.Host != "" {
		attrs = append(attrs, slog.String("host", ev.Host))
	}
	if sha := ev.SHA; sha != "" || ev.Run.SHA != "" {
		if sha == "" {
			sha = ev.Run.SHA
		}
		attrs = append(attrs, slog.String("sha", sha))
	}
	if ev.Actor.Name != "" {
		attrs = append(attrs, slog.String("actor", ev.Actor.String()))
	}
	l.log.LogAttrs(ctx, slog.LevelInfo, ev.Message, attrs...)
}
