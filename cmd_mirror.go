package main

import (
	"context"
	"io"
	"os"

	"github.com/immunity-app/immunity/app"
	"github.com/immunity-app/immunity/canary/mirror"
)

// mirrorCmd runs the traffic mirror as a sidecar in front of a production host, logging
// as IMMUNITY_LOG_FORMAT and IMMUNITY_LOG_LEVEL say.
func mirrorCmd(ctx context.Context, args []string, stderr io.Writer) error {
	log, err := app.NewLogger(stderr, os.Getenv("IMMUNITY_LOG_FORMAT"), os.Getenv("IMMUNITY_LOG_LEVEL"))
	if err != nil {
		return err
	}
	return mirror.Command(ctx, args, stderr, log)
}
