package main

import (
	"context"
	"errors"
	"io"
)

func judgeCmd(ctx context.Context, args []string, stdout io.Writer) error {
	return errors.New("judge: not wired yet")
}
