package mirror

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// Command is `immunity mirror [flags]`: args are the flags after "mirror". It runs the
// sidecar until ctx ends. The control token comes from IMMUNITY_MIRROR_TOKEN_FILE or
// IMMUNITY_MIRROR_TOKEN, never from a flag (flags show in ps). It logs to log.
func Command(ctx context.Context, args []string, stderr io.Writer, log *slog.Logger) error {
	fs := flag.NewFlagSet("immunity mirror", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o SidecarOptions
	var methods string
	fs.StringVar(&o.Listen, "listen", "", "address production traffic arrives on, e.g. :8080 (required)")
	fs.StringVar(&o.Primary, "primary", "", "the app on this host, e.g. http://127.0.0.1:8081 (required)")
	fs.StringVar(&o.Control, "control", "", "address of the control endpoint, e.g. 10.0.0.5:9101 (default: "+ControlPath+" on --listen)")
	fs.StringVar(&methods, "methods", "GET,HEAD", "methods copied to the shadow, comma-separated")
	fs.IntVar(&o.Mirror.Queue, "queue", 1024, "copies waiting for a worker before new ones are dropped")
	fs.IntVar(&o.Mirror.Workers, "workers", 8, "concurrent shadow requests")
	fs.DurationVar(&o.Mirror.Timeout, "timeout", 0, "shadow request timeout (default 5s)")
	fs.BoolVar(&o.Mirror.CompareBody, "compare-body", false, "compare response bodies (sha256) as well as status codes")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: immunity mirror --listen ADDR --primary URL [--control ADDR] [flags]\n\nA reverse proxy in front of this host's app that copies safe requests to the canary when told to.\nThe control token is read from IMMUNITY_MIRROR_TOKEN_FILE or IMMUNITY_MIRROR_TOKEN.\n\nflags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.Listen == "" || o.Primary == "" {
		fs.Usage()
		return fmt.Errorf("immunity mirror: --listen and --primary are required")
	}
	for _, m := range strings.Split(methods, ",") {
		if m = strings.TrimSpace(m); m != "" {
			o.Mirror.Methods = append(o.Mirror.Methods, strings.ToUpper(m))
		}
	}
	tok, err := TokenFromEnv()
	if err != nil {
		return fmt.Errorf("immunity mirror: %w", err)
	}
	o.Token = tok
	o.Log = log
	return RunSidecar(ctx, o)
}
