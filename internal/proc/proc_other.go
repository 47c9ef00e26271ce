//go:build !unix

package proc

import "os/exec"

// Supervise leaves cmd as it is: only the command itself is killed on cancel.
func Supervise(cmd *exec.Cmd) {}
