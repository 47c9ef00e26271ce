//go:build !unix

package release

import "os/exec"

// killGroup leaves cmd as it is: only the command itself is killed on cancel.
func killGroup(cmd *exec.Cmd) {}
