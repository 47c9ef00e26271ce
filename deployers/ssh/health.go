package ssh

import (
	"context"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/immunity-app/immunity/deployers"
	"github.com/immunity-app/immunity/internal/wait"
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
		if err := poll(ctx, func() error { return deployers.Probe(ctx, url, s.HealthTimeout) }); err != nil {
			return fmt.Errorf("health check %s: %w", url, err)
		}
	}
	return nil
}

// poll calls try until it succeeds or ctx ends, and then returns try's last error.
func poll(ctx context.Context, try func() error) error {
	return wait.Until(ctx, wait.Backoff{First: 50 * time.Millisecond, Max: time.Second}, 0, func(context.Context) error { return try() })
}

// Healthy waits, up to the region's timeout, until the host passes its health check
// (health command and/or health path); a region with neither is healthy at once.
func (d *Deployer) Healthy(ctx context.Context, h deployers.Host) error {
	s, t, err := d.target(h)
	if err != nil {
		return fmt.Errorf("health of %s on %s: %w", h.App, h, err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()
	if err := d.waitHealthy(ctx, h, s, t); err != nil {
		return fmt.Errorf("health of %s on %s: %w", h.App, h, err)
	}
	return nil
}
