// Command immunity is a GitHub App and ChatOps bot that turns every push into a staged
// deployment through regions, with canary analysis and one-host-at-a-time production
// rollouts. Run `immunity help` for the commands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	_ "time/tzdata" // deploy windows name zones; the binary carries them for hosts and images without zoneinfo

	"github.com/immunity-app/immunity/app"
	"github.com/immunity-app/immunity/app/demo"
	"github.com/immunity-app/immunity/pipeline"
	"github.com/immunity-app/immunity/pipeline/config"
)

const usage = `immunity — staged deployments with canary analysis, driven from GitHub and Slack

usage:
  immunity serve [--config FILE]          run the server (dashboard, API, webhooks) on IMMUNITY_LISTEN
  immunity demo [--once]                  the whole pipeline on this machine with a sample app
  immunity config check FILE              check a config file; every error with file:line
  immunity promote APP REGION [--release SHA] [--force]
  immunity rollback APP REGION [--to SHA]
  immunity deploy APP SHA to REGION [--force]
  immunity status [APP]
  immunity lock APP REGION [REASON...]
  immunity unlock APP REGION [--force]
  immunity freeze APP [REGION...] until TIME REASON...   (or --all); unfreeze APP [REGION...] (or --all)
  immunity history APP [REGION]
  immunity rerun APP REGION [--run N]
  immunity report APP [--since 30d|2026-11-01] [--until ...] [--json]
                                          delivery figures: deploys, lead time, change failure rate, time to restore, canary stops
  immunity token create NAME [--role member|admin]   a personal API token, shown once
  immunity token list | token revoke NAME
  immunity judge --config FILE [--app NAME] --baseline FILE --canary FILE [--at SECONDS] [--json]
                                          (exit 0 pass, or marginal at an interim --at; 3 fail/inconclusive/error)
  immunity judge calibrate --config FILE [--app NAME] --baseline FILE --canary FILE ...
                                          measure allowances from recorded A/A pairs, write them into the config
  immunity mirror --listen ADDR --primary URL --control URL
  immunity healthcheck [--url URL]        exit 0 when the server at IMMUNITY_LISTEN is ready (for HEALTHCHECK)
  immunity version                        the version and commit this binary was built from

The chat-style commands (promote … rerun) and token go through the same command layer as
Slack and GitHub, as a verified person: on the server's machine through its local socket
(data_dir/immunity.sock of ./immunity.yml, or IMMUNITY_SOCKET), as the server's OS user;
elsewhere to IMMUNITY_SERVER with a personal token in IMMUNITY_TOKEN.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = serve(ctx, args[1:], stderr)
	case "demo":
		err = runDemo(ctx, args[1:], stdout)
	case "config":
		err = configCmd(args[1:], stdout)
	case "promote", "rollback", "deploy", "status", "lock", "unlock", "freeze", "unfreeze", "history", "rerun":
		return remote(ctx, args, stdout, stderr)
	case "report":
		err = reportCmd(ctx, args[1:], stdout, stderr)
	case "token":
		err = tokenCmd(ctx, args[1:], stdout)
	case "judge":
		err = judgeCmd(ctx, args[1:], stdout)
	case "mirror":
		err = mirrorCmd(ctx, args[1:], stderr)
	case "healthcheck":
		err = healthcheck(ctx, args[1:], stdout)
	case "version":
		fmt.Fprintln(stdout, versionLine())
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "immunity: unknown command %q%s\n\n%s", args[0], didYouMean(args[0]), usage)
		return 2
	}
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 2
		}
		var code errExit
		if errors.As(err, &code) {
			return int(code)
		}
		fmt.Fprintln(stderr, "immunity:", err)
		return 1
	}
	return 0
}

func configCmd(args []string, stdout io.Writer) error {
	if len(args) != 2 || args[0] != "check" {
		return errors.New("usage: immunity config check FILE")
	}
	cfg, err := config.Load(args[1])
	if err != nil {
		return err
	}
	regions := 0
	for _, a := range cfg.Apps {
		regions += len(a.Regions)
	}
	fmt.Fprintf(stdout, "%s: ok (%d apps, %d regions)\n", args[1], len(cfg.Apps), regions)
	return nil
}

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	cfgFile := fs.String("config", "", "config file (default ./immunity.yml when present)")
	logFormat := fs.String("log-format", os.Getenv("IMMUNITY_LOG_FORMAT"), "text or json (default text; IMMUNITY_LOG_FORMAT)")
	logLevel := fs.String("log-level", os.Getenv("IMMUNITY_LOG_LEVEL"), "debug, info, warn or error (default info; IMMUNITY_LOG_LEVEL)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log, err := app.NewLogger(stderr, *logFormat, *logLevel)
	if err != nil {
		return err
	}
	// Whatever logs through the default logger or the log package (net/http's server
	// errors among them) writes in the same format.
	slog.SetDefault(log)
	cfg, err := loadServeConfig(*cfgFile)
	if err != nil {
		return err
	}
	token, err := mirrorToken()
	if err != nil {
		return err
	}
	in, err := app.Open(ctx, app.Options{Config: cfg, Logger: log, Listeners: []pipeline.Listener{app.NewEventLog(log)}, MirrorToken: token,
		Persisted: testPoints(killPoint(os.Getenv("IMMUNITY_TEST_KILL_AT"), log), stopPoint(os.Getenv("IMMUNITY_TEST_STOP_AT"), log))})
	if err != nil {
		return err
	}
	defer in.Close(false)
	ln, err := in.Server.Listen(cfg.Server.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	sockPath := envOr("IMMUNITY_SOCKET", in.SocketPath()) // replicas sharing a data_dir each name their own
	sock, err := app.ListenSocket(sockPath)
	if err != nil {
		return err
	}
	if err := in.Start(ctx); err != nil {
		return err
	}
	in.Server.SetReady(true)
	log.Info("immunity serving", "url", "http://"+ln.Addr().String(), "socket", sockPath, "apps", len(cfg.Apps), "version", versionLine())
	return in.Server.Serve(ctx, ln, sock)
}

// loadServeConfig reads the config file, or starts from an empty one; the environment
// overrides the listen address.
func loadServeConfig(file string) (*config.Config, error) {
	if file == "" {
		if _, err := os.Stat("immunity.yml"); err == nil {
			file = "immunity.yml"
		}
	}
	var cfg *config.Config
	if file != "" {
		c, err := config.Load(file)
		if err != nil {
			return nil, err
		}
		cfg = c
	} else {
		cfg = config.Empty()
	}
	if v := os.Getenv("IMMUNITY_LISTEN"); v != "" {
		cfg.Server.Listen = v
	}
	if v := os.Getenv("IMMUNITY_DATABASE_URL"); v != "" {
		cfg.Server.Database = v
	}
	if v := os.Getenv("IMMUNITY_REPLICA"); v != "" {
		cfg.Server.Replica = v
	}
	if file != "" {
		cfg.GitHub.ResolvePaths(filepath.Dir(file))
		cfg.Slack.ResolvePaths(filepath.Dir(file))
	}
	if err := cfg.GitHub.FromEnv(os.Getenv); err != nil {
		return nil, err
	}
	if err := cfg.GitHub.Validate(); err != nil {
		return nil, fmt.Errorf("github: %w", err)
	}
	cfg.Slack.FromEnv(os.Getenv)
	if err := cfg.Slack.Validate(); err != nil {
		return nil, fmt.Errorf("slack: %w", err)
	}
	return cfg, nil
}

func runDemo(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	once := fs.Bool("once", false, "run the scripted scenario, print a summary and exit (0 only if every outcome happened)")
	listen := fs.String("listen", envOr("IMMUNITY_LISTEN", "127.0.0.1:3102"), "address of the dashboard and API")
	dir := fs.String("dir", "", "working folder (default: a new temporary folder)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	return demo.Run(ctx, demo.Options{Once: *once, Listen: *listen, Dir: *dir, Out: stdout})
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

var commands = []string{"serve", "demo", "config", "promote", "rollback", "deploy", "status", "lock", "unlock", "freeze", "unfreeze", "history", "rerun", "token", "judge", "mirror", "healthcheck", "version", "help"}

// didYouMean suggests the command closest to a mistyped one.
func didYouMean(typed string) string {
	best, bestD := "", 3
	for _, c := range commands {
		if d := config.EditDistance(typed, c); d < bestD {
			best, bestD = c, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// mirrorToken is the shared secret of the traffic mirror sidecars, from
// IMMUNITY_MIRROR_TOKEN or the file IMMUNITY_MIRROR_TOKEN_FILE names.
func mirrorToken() (string, error) {
	if f := os.Getenv("IMMUNITY_MIRROR_TOKEN_FILE"); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", fmt.Errorf("IMMUNITY_MIRROR_TOKEN_FILE: %w", err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	return os.Getenv("IMMUNITY_MIRROR_TOKEN"), nil
}

// testPoints calls each hook that is set; nil when none is.
func testPoints(hooks ...func(string)) func(string) {
	var set []func(string)
	for _, h := range hooks {
		if h != nil {
			set = append(set, h)
		}
	}
	if len(set) == 0 {
		return nil
	}
	return func(p string) {
		for _, h := range set {
			h(p)
		}
	}
}

// killPoint is the crash tests' hook: with IMMUNITY_TEST_KILL_AT=POINT (or POINT#N, the
// Nth time), the server SIGKILLs itself right after that transition is written, before
// anything acts on it. Empty: no hook.
func killPoint(spec string, log *slog.Logger) func(string) {
	return signalPoint(spec, log, syscall.SIGKILL, "kill point reached")
}

// stopPoint is the fencing tests' hook: with IMMUNITY_TEST_STOP_AT=POINT (or POINT#N) the
// server SIGSTOPs itself right after that transition is written, as a server paused past
// its lease; it goes on from there when it gets SIGCONT. The kernel stops a process a
// moment after it signals itself (on a busy machine, milliseconds: time for the work to
// switch a host and start its app), so the work that reached the point waits there for
// the SIGCONT and the pause is where the point says. Empty: no hook.
func stopPoint(spec string, log *slog.Logger) func(string) {
	return signalPoint(spec, log, syscall.SIGSTOP, "stop point reached")
}

func signalPoint(spec string, log *slog.Logger, sig syscall.Signal, msg string) func(string) {
	if spec == "" {
		return nil
	}
	point, nth := spec, 1
	if p, n, ok := strings.Cut(spec, "#"); ok {
		point = p
		if _, err := fmt.Sscan(n, &nth); err != nil || nth < 1 {
			nth = 1
		}
	}
	var mu sync.Mutex
	seen := 0
	return func(p string) {
		if p != point {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if seen++; seen == nth {
			log.Warn(msg, "point", p, "n", nth)
			var cont chan os.Signal
			if sig == syscall.SIGSTOP {
				cont = make(chan os.Signal, 1)
				signal.Notify(cont, syscall.SIGCONT)
				defer signal.Stop(cont)
			}
			syscall.Kill(os.Getpid(), sig)
			switch sig {
			case syscall.SIGKILL:
				select {} // the signal is on its way
			case syscall.SIGSTOP:
				<-cont
			}
		}
	}
}
