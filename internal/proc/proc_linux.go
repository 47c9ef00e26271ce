package proc

import "syscall"

// dieWithParent has the kernel SIGKILL the command when the thread that started it ends;
// Go never ends a thread it did not lock, so in effect when the server process dies.
func dieWithParent(attr *syscall.SysProcAttr) { attr.Pdeathsig = syscall.SIGKILL }
