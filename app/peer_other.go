//go:build !linux

package app

import (
	"errors"
	"net"
)

// peerUID is not known here: the local socket gives no identity on this system.
func peerUID(c *net.UnixConn) (int, error) {
	return 0, errors.New("peer credentials are read on Linux only")
}
