package mirror

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// ControlPath is where a sidecar's control endpoint answers:
// POST {"shadow":["http://canary1:8080"]} turns mirroring on, DELETE turns it off,
// GET returns {"shadow":[...],"stats":{...}}. Every call needs "Authorization: Bearer TOKEN".
const ControlPath = "/_immunity/mirror"

// controlState is the control endpoint's body.
type controlState struct {
	Shadow []string `json:"shadow"`
	Stats  *Stats   `json:"stats,omitempty"`
}

// ControlHandler serves the control endpoint of p, refusing calls without token.
func ControlHandler(p *Proxy, token string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(ControlPath, func(w http.ResponseWriter, r *http.Request) {
		if token == "" || !authorized(r, token) {
			http.Error(w, "mirror control: missing or wrong bearer token", http.StatusUnauthorized)
			return
		}
		switch r.Method {
		case http.MethodPost, http.MethodPut:
			var s controlState
			if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&s); err != nil {
				http.Error(w, "mirror control: expected {\"shadow\":[URL...]}: "+err.Error(), http.StatusBadRequest)
				return
			}
			if err := p.SetShadow(s.Shadow); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
		case http.MethodDelete:
			p.Off()
		case http.MethodGet:
		default:
			http.Error(w, "mirror control: expected GET, POST or DELETE", http.StatusMethodNotAllowed)
			return
		}
		st := p.Stats()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(controlState{Shadow: p.Shadow(), Stats: &st})
	})
	return mux
}

func authorized(r *http.Request, token string) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(got), []byte(token)) == 1
}

// Client drives a sidecar's control endpoint.
type Client struct {
	URL   string // the sidecar's control base URL, e.g. http://10.0.0.5:9101
	Token string
	HTTP  *http.Client // default http.DefaultClient
}

// SetShadow turns the sidecar's mirroring on to targets (off when empty).
func (c Client) SetShadow(ctx context.Context, targets []string) error {
	if len(targets) == 0 {
		return c.Off(ctx)
	}
	body, _ := json.Marshal(controlState{Shadow: targets})
	_, err := c.do(ctx, http.MethodPost, body)
	return err
}

// Off turns the sidecar's mirroring off.
func (c Client) Off(ctx context.Context) error {
	_, err := c.do(ctx, http.MethodDelete, nil)
	return err
}

// Stats returns the sidecar's counters.
func (c Client) Stats(ctx context.Context) (Stats, error) {
	s, err := c.do(ctx, http.MethodGet, nil)
	if err != nil || s.Stats == nil {
		return Stats{}, err
	}
	return *s.Stats, nil
}

func (c Client) do(ctx context.Context, method string, body []byte) (controlState, error) {
	var s controlState
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.URL, "/")+ControlPath, bytes.NewReader(body))
	if err != nil {
		return s, fmt.Errorf("mirror control %s %s: %w", method, c.URL, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	req.Header.Set("Content-Type", "application/json")
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return s, fmt.Errorf("mirror control %s %s: %w", method, c.URL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return s, fmt.Errorf("mirror control %s %s: %s: %s", method, c.URL, resp.Status, strings.TrimSpace(string(msg)))
	}
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		return s, fmt.Errorf("mirror control %s %s: reading the answer: %w", method, c.URL, err)
	}
	return s, nil
}
