package deployers

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// DefaultHealthTimeout bounds one health request when the config names no
// run.health_timeout.
const DefaultHealthTimeout = 5 * time.Second

// healthClient has no timeout of its own: every request carries one in its context.
var healthClient = &http.Client{}

// Probe asks a health URL once. Healthy is one definition for every deployer: any 2xx
// answer within timeout (DefaultHealthTimeout when zero or less).
func Probe(ctx context.Context, url string, timeout time.Duration) error {
	if timeout <= 0 {
		timeout = DefaultHealthTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
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
		return fmt.Errorf("health check answered %s", resp.Status)
	}
	return nil
}
