package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/immunity-app/immunity/app"
	"github.com/immunity-app/immunity/pipeline/config"
)

// client is how the CLI reaches a server: the local socket, or a URL with a token.
type client struct {
	base  string // http://immunity for the socket
	token string
	http  *http.Client
	where string // for errors: the socket path or the URL
	err   error  // the server cannot be named so (a malformed IMMUNITY_SERVER)
}

// dial finds the server. IMMUNITY_SOCKET names a socket; IMMUNITY_SERVER a URL (with
// IMMUNITY_TOKEN); otherwise the socket in the data_dir of ./immunity.yml (or
// ./immunity-data) when it is there, else http://IMMUNITY_LISTEN with IMMUNITY_TOKEN.
func dial() client {
	sock := os.Getenv("IMMUNITY_SOCKET")
	server := os.Getenv("IMMUNITY_SERVER")
	if sock == "" && server == "" {
		if p := defaultSocket(); p != "" {
			if _, err := os.Stat(p); err == nil {
				sock = p
			}
		}
	}
	if sock != "" {
		tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}}
		return client{base: "http://immunity", http: &http.Client{Transport: tr}, where: sock}
	}
	if server == "" {
		server = "http://" + envOr("IMMUNITY_LISTEN", "127.0.0.1:3102")
	}
	server = strings.TrimRight(server, "/")
	c := client{base: server, token: os.Getenv("IMMUNITY_TOKEN"), http: http.DefaultClient, where: server}
	if u, err := url.Parse(server); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		c.err = fmt.Errorf("IMMUNITY_SERVER %q: expected the server's URL, such as http://10.0.3.2:3102", server)
	}
	return c
}

// defaultSocket is the socket in the data_dir the server would use here.
func defaultSocket() string {
	dir := "immunity-data"
	if _, err := os.Stat("immunity.yml"); err == nil {
		if cfg, err := config.Load("immunity.yml"); err == nil {
			dir = cfg.Server.DataDir
		}
	}
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	return filepath.Join(dir, app.SocketName)
}

// do sends a request with a JSON body (nil: none) and decodes the JSON answer into out.
func (c client) do(ctx context.Context, method, path string, body, out any) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, r)
	if err != nil {
		return 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("cannot reach the server at %s (start it with `immunity serve` or `immunity demo`): %w", c.where, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("read the answer from %s: %w", c.where, err)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		// A refusal the answer's shape does not hold ({"error": ...} where a list was
		// asked for) is said in the server's words.
		var refusal struct{ Error, Text string }
		if json.Unmarshal(raw, &refusal) == nil && refusal.Error+refusal.Text != "" {
			return resp.StatusCode, fmt.Errorf("%s (%s from %s)", refusal.Error+refusal.Text, resp.Status, c.where)
		}
		return resp.StatusCode, fmt.Errorf("bad answer from %s: %s", c.where, resp.Status)
	}
	return resp.StatusCode, nil
}

// remote sends a chat-style command to the running server's command layer.
func remote(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	var reply struct {
		OK   bool   `json:"ok"`
		Text string `json:"text"`
	}
	if _, err := dial().do(ctx, http.MethodPost, "/api/commands", map[string]string{"text": strings.Join(args, " ")}, &reply); err != nil {
		fmt.Fprintln(stderr, "immunity:", err)
		return 1
	}
	if !reply.OK {
		fmt.Fprintln(stderr, reply.Text)
		return 1
	}
	fmt.Fprintln(stdout, reply.Text)
	return 0
}

type tokenInfo struct {
	Name      string `json:"name"`
	Role      string `json:"role"`
	CreatedBy string `json:"created_by"`
	Created   string `json:"created"`
	LastUsed  string `json:"last_used"`
	Revoked   string `json:"revoked"`
	Token     string `json:"token"`
	Error     string `json:"error"`
}

// tokenCmd manages personal API tokens: create (shown once), list, revoke.
func tokenCmd(ctx context.Context, args []string, stdout io.Writer) error {
	const use = "usage: immunity token create NAME [--role member|admin] | token list | token revoke NAME"
	if len(args) == 0 {
		return errors.New(use)
	}
	c := dial()
	switch args[0] {
	case "create":
		fs := flag.NewFlagSet("token create", flag.ContinueOnError)
		role := fs.String("role", "member", "member (matched by name in access grants) or admin (the server's operator)")
		if len(args) < 2 || strings.HasPrefix(args[1], "-") {
			return errors.New(use)
		}
		if err := fs.Parse(args[2:]); err != nil {
			return err
		}
		var t tokenInfo
		code, err := c.do(ctx, http.MethodPost, "/api/tokens", map[string]string{"name": args[1], "role": *role}, &t)
		if err != nil {
			return err
		}
		if code != http.StatusOK {
			return fmt.Errorf("token create %s: %s", args[1], t.Error)
		}
		fmt.Fprintf(stdout, "token %s (%s): %s\nIt is shown only this once; the server keeps only its hash. Use it as IMMUNITY_TOKEN, or to sign in to the dashboard.\n", t.Name, t.Role, t.Token)
		return nil
	case "list":
		var ts []tokenInfo
		code, err := c.do(ctx, http.MethodGet, "/api/tokens", nil, &ts)
		if err != nil {
			return err
		}
		if code != http.StatusOK {
			return fmt.Errorf("token list: %s", http.StatusText(code))
		}
		w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "NAME\tROLE\tCREATED\tBY\tLAST USED\tREVOKED")
		for _, t := range ts {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", t.Name, t.Role, t.Created, t.CreatedBy, orDash(t.LastUsed), orDash(t.Revoked))
		}
		return w.Flush()
	case "revoke":
		if len(args) != 2 {
			return errors.New(use)
		}
		var out tokenInfo
		code, err := c.do(ctx, http.MethodDelete, "/api/tokens/"+args[1], nil, &out)
		if err != nil {
			return err
		}
		if code != http.StatusOK {
			return fmt.Errorf("token revoke %s: %s", args[1], out.Error)
		}
		fmt.Fprintf(stdout, "revoked token %s\n", args[1])
		return nil
	}
	return errors.New(use)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
