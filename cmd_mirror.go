package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/immunity-app/immunity/canary/mirror"
)

// mirrorCmd runs the traffic mirror as a sidecar in front of a production host.
func mirrorCmd(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("mirror", flag.ContinueOnError)
	listen := fs.String("listen", "", "where production traffic arrives, e.g. :8080")
	primary := fs.String("primary", "", "the app on this host, e.g. http://127.0.0.1:8081")
	control := fs.String("control", "", "where the control endpoint listens (host:port); empty: on --listen")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *listen == "" || *primary == "" {
		return errors.New("usage: immunity mirror --listen ADDR --primary URL [--control ADDR] (token in IMMUNITY_MIRROR_TOKEN or IMMUNITY_MIRROR_TOKEN_FILE)")
	}
	token := os.Getenv("IMMUNITY_MIRROR_TOKEN")
	if f := os.Getenv("IMMUNITY_MIRROR_TOKEN_FILE"); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		token = strings.TrimSpace(string(b))
	}
	return mirror.RunSidecar(ctx, mirror.SidecarOptions{Listen: *listen, Primary: *primary, Control: *control, Token: token,
		Log: slog.New(slog.NewTextHandler(stderr, nil))})
}
