package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"

	"github.com/immunity-app/immunity/pipeline"
)

// SocketName is the local socket's file in data_dir: a door only the server's own OS
// user (and root) can open, for the CLI on the server's machine.
const SocketName = "immunity.sock"

// localPeer keys the verified local caller in a request's context.
type localPeer struct{}

// ListenSocket listens on a unix socket at path with mode 0600. The socket is made in a
// private folder and renamed into place, so it is never reachable with wider rights; a
// live server already on path is an error, a stale file is replaced.
func ListenSocket(path string) (net.Listener, error) {
	if len(path) > 100 {
		return nil, fmt.Errorf("local socket %s: the path is longer than a unix socket's 100 bytes; use a shorter data_dir", path)
	}
	if c, err := net.Dial("unix", path); err == nil {
		c.Close()
		return nil, fmt.Errorf("local socket %s: another server is listening there", path)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(path), ".sock-")
	if err != nil {
		return nil, fmt.Errorf("local socket: %w", err)
	}
	defer os.RemoveAll(tmp)
	p := filepath.Join(tmp, "s")
	ln, err := net.Listen("unix", p)
	if err != nil {
		return nil, fmt.Errorf("local socket: %w", err)
	}
	ul := ln.(*net.UnixListener)
	ul.SetUnlinkOnClose(false)
	err = os.Chmod(p, 0o600)
	if err == nil {
		err = os.Rename(p, path)
	}
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("local socket %s: %w", path, err)
	}
	return &socketListener{UnixListener: ul, path: path}, nil
}

type socketListener struct {
	*net.UnixListener
	path string
}

func (l *socketListener) Close() error {
	err := l.UnixListener.Close()
	os.Remove(l.path)
	return err
}

// connContext tags a request that came through the local socket with the OS user at the
// other end, when that is the server's own user or root; anyone else gets no identity.
func connContext(ctx context.Context, c net.Conn) context.Context {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return ctx
	}
	a, err := peerActor(uc)
	if err != nil {
		return ctx
	}
	return context.WithValue(ctx, localPeer{}, a)
}

// peerActor is the local user at the other end of a socket connection.
func peerActor(c *net.UnixConn) (pipeline.Actor, error) {
	uid, err := peerUID(c)
	if err != nil {
		return pipeline.Actor{}, err
	}
	if uid != os.Getuid() && uid != 0 {
		return pipeline.Actor{}, errors.New("the peer is neither the server's user nor root")
	}
	name := strconv.Itoa(uid)
	if u, err := user.LookupId(name); err == nil {
		name = u.Username
	}
	return pipeline.Actor{ID: "local:" + name, Name: name, Via: "socket", Admin: true}, nil
}
