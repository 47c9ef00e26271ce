package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime/debug"
	"time"
)

// buildVersion and buildCommit are set at build time with -ldflags "-X main.buildVersion=v1.2.3
// -X main.buildCommit=SHA" (the container build does); otherwise they come from what the Go
// toolchain recorded: the module version of `go install …@v1.2.3`, the git revision of a
// build inside a checkout.
var buildVersion, buildCommit string

// versionLine is what `immunity version` prints: "immunity VERSION (commit SHA[, modified])".
func versionLine() string {
	v, c, modified := buildVersion, buildCommit, false
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v == "" && bi.Main.Version != "" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if c == "" {
					c = s.Value
				}
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	if v == "" {
		v = "(devel)"
	}
	if c == "" {
		c = "unknown"
	}
	if modified {
		c += ", modified"
	}
	return fmt.Sprintf("immunity %s (commit %s)", v, c)
}

// healthcheck asks the server's /readyz and fails unless it answers 200: the container's
// HEALTHCHECK, with nothing but this binary in the image.
func healthcheck(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	url := fs.String("url", "", "readiness URL (default http://IMMUNITY_LISTEN/readyz, a wildcard host asked on 127.0.0.1)")
	timeout := fs.Duration("timeout", 5*time.Second, "how long to wait for the answer")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *url == "" {
		*url = "http://" + localAddr(envOr("IMMUNITY_LISTEN", "127.0.0.1:3102")) + "/readyz"
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: %s answered %s: %s", *url, resp.Status, body)
	}
	fmt.Fprintf(stdout, "%s: %s\n", *url, body)
	return nil
}

// localAddr turns a listen address into one to connect to: a wildcard or empty host
// (":3102", "0.0.0.0:3102", "[::]:3102") is asked on 127.0.0.1.
func localAddr(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}
