package mirror

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

// SidecarOptions configure `immunity mirror`.
type SidecarOptions struct {
	Listen  string // where production traffic arrives, e.g. :8080
	Primary string // the app on this host, e.g. http://127.0.0.1:8081
	// Control is where the control endpoint listens (host:port, or a URL whose host:port
	// is used). Empty: the control endpoint is served on Listen at ControlPath.
	Control string
	Token   string // bearer token for the control endpoint; required
	Mirror  Options
	Log     *slog.Logger
}

// RunSidecar runs a mirror in front of o.Primary until ctx ends, then shuts down
// gracefully. It is `immunity mirror --listen ADDR --primary URL --control ADDR` with
// the token from IMMUNITY_MIRROR_TOKEN[_FILE].
func RunSidecar(ctx context.Context, o SidecarOptions) error {
	if o.Token == "" {
		return errors.New("mirror sidecar: a control token is required (IMMUNITY_MIRROR_TOKEN or IMMUNITY_MIRROR_TOKEN_FILE)")
	}
	log := o.Log
	if log == nil {
		log = slog.Default()
	}
	p, err := New(o.Primary, o.Mirror)
	if err != nil {
		return fmt.Errorf("mirror sidecar: %w", err)
	}
	defer p.Close()
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return fmt.Errorf("mirror sidecar: listen %s: %w", o.Listen, err)
	}
	ctl := ControlHandler(p, o.Token)
	var servers []interface{ Shutdown(context.Context) error }
	if o.Control == "" {
		servers = append(servers, p.Serve(ln, ctl))
	} else {
		cln, err := net.Listen("tcp", hostPort(o.Control))
		if err != nil {
			ln.Close()
			return fmt.Errorf("mirror sidecar: listen for control on %s: %w", o.Control, err)
		}
		cs := &http.Server{Handler: ctl, ReadHeaderTimeout: headerTimeout}
		go cs.Serve(cln)
		servers = append(servers, p.Serve(ln, nil), cs)
		log.Info("mirror control listening", "addr", cln.Addr().String())
	}
	log.Info("mirror listening", "addr", ln.Addr().String(), "primary", o.Primary)
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	for _, s := range servers {
		s.Shutdown(sctx)
	}
	return nil
}

// hostPort accepts "host:port" or "http://host:port/...".
func hostPort(s string) string {
	if _, rest, ok := strings.Cut(s, "://"); ok {
		h, _, _ := strings.Cut(rest, "/")
		return h
	}
	return s
}

// TokenFromEnv reads the control token from IMMUNITY_MIRROR_TOKEN_FILE (a file holding
// it) or IMMUNITY_MIRROR_TOKEN.
func TokenFromEnv() (string, error) {
	if f := os.Getenv("IMMUNITY_MIRROR_TOKEN_FILE"); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", fmt.Errorf("mirror token: %w", err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	return os.Getenv("IMMUNITY_MIRROR_TOKEN"), nil
}
