package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/immunity-app/immunity/pipeline/config"
	"github.com/immunity-app/immunity/pipeline/judge"
)

// judgeCmd judges two recorded sets of samples offline, exactly as a monitoring window
// would, with the metric settings of an app in the config file.
func judgeCmd(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("judge", flag.ContinueOnError)
	cfgFile := fs.String("config", "", "config file whose app's metrics section says how to judge")
	appName := fs.String("app", "", "the app whose metrics to use (default: the only app in the config)")
	baseline := fs.String("baseline", "", "CSV of the baseline's samples: time,metric,value")
	canary := fs.String("canary", "", "CSV of the canary's samples: time,metric,value")
	asJSON := fs.Bool("json", false, "print the verdict as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *cfgFile == "" || *baseline == "" || *canary == "" {
		return errors.New("usage: immunity judge --config FILE [--app NAME] --baseline FILE --canary FILE [--json]")
	}
	cfg, err := config.Load(*cfgFile)
	if err != nil {
		return err
	}
	var a *config.App
	switch {
	case *appName != "":
		var ok bool
		if a, ok = cfg.App(*appName); !ok {
			return fmt.Errorf("judge: no app %q in %s", *appName, *cfgFile)
		}
	case len(cfg.Apps) == 1:
		a = &cfg.Apps[0]
	default:
		return fmt.Errorf("judge: %s has %d apps; name one with --app", *cfgFile, len(cfg.Apps))
	}
	b, err := os.Open(*baseline)
	if err != nil {
		return err
	}
	defer b.Close()
	c, err := os.Open(*canary)
	if err != nil {
		return err
	}
	defer c.Close()
	v, err := judge.RunOffline(ctx, a.JudgeMetrics(), b, c, *asJSON, stdout)
	if err != nil {
		return err
	}
	if v.Outcome == judge.Fail || v.Outcome == judge.Error {
		return errExit(3)
	}
	return nil
}

// errExit ends the command with a status code and no further message.
type errExit int

func (e errExit) Error() string { return fmt.Sprintf("exit status %d", int(e)) }
