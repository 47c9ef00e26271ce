package ssh

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/immunity-app/immunity/deployers"
)

// healthCommandScript runs the health argv in BASE/current. Args: base; then the argv.
const healthCommandScript = runScript

// waitHealthy polls the region's health check (the host URL's health path and/or a
// command on the host) until it passes or ctx ends.
func (d *Deployer) waitHealthy(ctx context.Context, h deployers.Host, s Settings, t target) error {
	if len(s.HealthCommand) > 0 {
		argv, err := shellJoin(s.HealthCommand)
		if err != nil {
			return fmt.Errorf("health command: %w", err)
		}
		dir, _ := script("%s", path.Join(h.Base, "current"))
		cmd := fmt.Sprintf(healthCommandScript, dir, argv)
		if err := poll(ctx, func() error { return d.pool.run(ctx, t, command{script: cmd}) }); err != nil {
			return fmt.Errorf("health command %s: %w", strings.Join(s.HealthCommand, " "), err)
		}
	}
	if s.HealthPath != "" && h.URL != "" {
		url := strings.TrimSuffix(h.URL, "/") + s.HealthPath
		if err := poll(ctx, func() error { return getOK(ctx, url) }); err != nil {
			return fmt.Errorf("health check %s: %w", url, err)
		}
	}
	return nil
}

// poll calls try until it succeeds or ctx ends, and then returns try's last error.
func poll(ctx context.Context, try func() error) error {
	for wait := 50 * time.Millisecond; ; wait = min(wait*2, time.Second) {
		err := try()
		if err == nil {
			return nil
		}
		if serr := sleep(ctx, wait); serr != nil {
			return fmt.Errorf("%w (last attempt: %w)", serr, err)
		}
	}
}

var healthClient = &http.Client{Timeout: 5 * time.Second}

func getOK(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := healthClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("status %s", resp.Status)
	}
	return nil
}
