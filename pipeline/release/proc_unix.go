//go:build unix

package release

import (
	"os/exec"
	"syscall"
)

// killGroup runs cmd in its own process group and, on cancel, kills the whole group, so a
// build's children (compilers, test runners) never outlive a timeout. Where the system
// can (Linux), the command is also killed when the server dies: a build nobody waits for
// must not go on writing into a checkout the next server builds in again.
func killGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	dieWithParent(cmd.SysProcAttr)
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
}
