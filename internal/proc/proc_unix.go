//go:build unix

package proc

import (
	"os/exec"
	"syscall"
)

// Supervise runs cmd in its own process group and, on cancel, kills the whole group, so
// a command's children (compilers, test runners, browsers) never outlive a timeout.
// Where the system can (Linux), the command is also killed when the server dies: work
// nobody waits for must not go on writing into folders the next server uses again.
func Supervise(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	dieWithParent(cmd.SysProcAttr)
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
}
