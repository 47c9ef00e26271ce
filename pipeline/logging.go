package pipeline

import (
	"context"
	"log/slog"

	"github.com/immunity-app/immunity/internal/logctx"
	"github.com/immunity-app/immunity/store"
)

// runLog is ctx carrying what the lines logged in a run's work are about: the app, the
// run, its release and, for a stage, the region (internal/logctx). The deployers, the
// builder, the tests and the monitor log with the context they are given and so say it
// without knowing of runs.
func runLog(ctx context.Context, r store.Run, region string) context.Context {
	attrs := []slog.Attr{slog.String("app", r.App), slog.Int64("run", r.ID), slog.String("sha", r.SHA)}
	if region != "" {
		attrs = append(attrs, slog.String("region", region))
	}
	return logctx.With(ctx, attrs...)
}

// hostLog is ctx of work on one host.
func hostLog(ctx context.Context, host string) context.Context {
	return logctx.With(ctx, slog.String("host", host))
}
