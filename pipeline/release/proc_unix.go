//go:build unix

package release

import (
	"os/exec"
	"syscall"
)

// killGroup runs cmd in its own process group and, on cancel, kills the whole group, so a
// build's children (compilers, test runners) never outlive a timeout.
func killGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
}
