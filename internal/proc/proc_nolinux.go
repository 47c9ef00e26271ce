//go:build unix && !linux

package proc

import "syscall"

// dieWithParent: only Linux can have a command killed when its parent dies.
func dieWithParent(*syscall.SysProcAttr) {}
