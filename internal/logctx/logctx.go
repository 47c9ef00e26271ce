// Package logctx carries what a log line is about (the app, run, region, host and
// release of the work under way) in a context, and wraps a slog.Handler so that every
// line logged with that context says so. The engine puts a run's facts in the context of
// the work it does for the run; whatever that work calls (a deployer, the canary monitor,
// the builder, an HTTP client's retries) logs them by logging with the context
// (InfoContext, LogAttrs) and needs to know nothing of runs.
package logctx

import (
	"context"
	"log/slog"
	"slices"
)

type key struct{}

// With returns a context carrying attrs besides those ctx carries; a key given again
// replaces the value ctx had for it.
func With(ctx context.Context, attrs ...slog.Attr) context.Context {
	old := Attrs(ctx)
	out := make([]slog.Attr, 0, len(old)+len(attrs))
	for _, a := range old {
		if !slices.ContainsFunc(attrs, func(b slog.Attr) bool { return b.Key == a.Key }) {
			out = append(out, a)
		}
	}
	out = append(out, attrs...)
	return context.WithValue(ctx, key{}, out)
}

// Attrs returns the attrs ctx carries (nil when none).
func Attrs(ctx context.Context) []slog.Attr {
	if ctx == nil {
		return nil
	}
	a, _ := ctx.Value(key{}).([]slog.Attr)
	return a
}

// Handler wraps next so that a record logged with a context gets the context's attrs it
// does not have itself (nor through Logger.With). A record that names another run (its
// "run" differs from the context's) is about that run and gets none of them. Inside a
// group (WithGroup) nothing is added: the facts belong at the top of a line.
func Handler(next slog.Handler) slog.Handler {
	if h, ok := next.(*handler); ok {
		return h
	}
	return &handler{next: next}
}

type handler struct {
	next    slog.Handler
	with    []slog.Attr // given through WithAttrs
	grouped bool
}

func (h *handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	add := Attrs(ctx)
	if len(add) == 0 || h.grouped {
		return h.next.Handle(ctx, r)
	}
	has := make(map[string]slog.Value, r.NumAttrs()+len(h.with))
	for _, a := range h.with {
		has[a.Key] = a.Value
	}
	r.Attrs(func(a slog.Attr) bool {
		has[a.Key] = a.Value
		return true
	})
	if run, ok := has["run"]; ok {
		for _, a := range add {
			if a.Key == "run" && !a.Value.Equal(run) {
				return h.next.Handle(ctx, r)
			}
		}
	}
	var extra []slog.Attr
	for _, a := range add {
		if _, ok := has[a.Key]; !ok {
			extra = append(extra, a)
		}
	}
	if len(extra) > 0 {
		r = r.Clone()
		r.AddAttrs(extra...)
	}
	return h.next.Handle(ctx, r)
}

func (h *handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	n := &handler{next: h.next.WithAttrs(attrs), grouped: h.grouped, with: slices.Clip(h.with)}
	if !h.grouped {
		n.with = append(n.with, attrs...)
	}
	return n
}

func (h *handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return &handler{next: h.next.WithGroup(name), grouped: true, with: h.with}
}
