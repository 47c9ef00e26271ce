package main

import (
	"context"
	"io"

	"github.com/immunity-app/immunity/canary/mirror"
)

// mirrorCmd runs the traffic mirror as a sidecar in front of a production host.
func mirrorCmd(ctx context.Context, args []string, stderr io.Writer) error {
	return mirror.Command(ctx, args, stderr)
}
