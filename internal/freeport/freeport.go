// Package freeport hands out TCP ports on 127.0.0.1 for servers started as their own
// processes or later listeners (a test's sshd, PostgreSQL and Prometheus, a local host's
// app, the demo's hosts), where the port must be known before anything listens on it.
//
// A port the kernel gives a listener on port 0 comes from the ephemeral range, the range
// every outgoing connection's local port is taken from too: between closing that listener
// and the server binding the port, any connection made on the machine may take it, and the
// server fails with "address already in use". The ports here come from below the
// ephemeral range, which the kernel never hands out by itself; each is picked at random,
// checked free by binding it, and never handed out twice by one process, nor by two
// processes at once (test binaries of several packages run side by side): a port handed
// out is held by an flock on a file named after it in the temp folder's
// immunity-freeport, for as long as the process lives, and other processes pass it by.
package freeport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// lowest is the lowest port handed out: below it lie well-known services' ports.
const lowest = 10000

var (
	mu     sync.Mutex
	given  = map[int]bool{}
	held   []*os.File // the claims of the ports given, open while the process lives
	ranges = sync.OnceValue(ephemeralStart)
)

// Get returns a port on 127.0.0.1 that nothing listens on now.
func Get() (int, error) {
	top := ranges()
	mu.Lock()
	defer mu.Unlock()
	if top-lowest >= 1000 {
		for range 200 {
			p := lowest + rand.IntN(top-lowest)
			if given[p] {
				continue
			}
			l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
			if err != nil {
				continue // in use
			}
			l.Close()
			given[p] = true // taken or not, not tried again
			if !claim(p) {
				continue // another process has it
			}
			return p, nil
		}
	}
	// No room below the ephemeral range (or all of it tried): the kernel's choice.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	p := l.Addr().(*net.TCPAddr).Port
	given[p] = true
	return p, nil
}

// Addr returns "127.0.0.1:PORT" for a port from Get.
func Addr() (string, error) {
	p, err := Get()
	if err != nil {
		return "", err
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(p)), nil
}

// ephemeralStart is the first port of the kernel's ephemeral range (Linux's
// ip_local_port_range; 32768, its default, elsewhere or when it cannot be read).
func ephemeralStart() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 32768
	}
	n, err := strconv.Atoi(f[0])
	if err != nil || n <= 0 || n > 65535 {
		return 32768
	}
	return n
}

// claim takes p for this process, across processes: an exclusive flock on a file named
// after p, kept open (the kernel lets it go when the process ends). False when another
// process holds it; true, too, when no claim file can be made (a port checked free is
// still the best there is).
func claim(p int) bool {
	dir := filepath.Join(os.TempDir(), "immunity-freeport")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return true
	}
	f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(p)), os.O_RDONLY|os.O_CREATE, 0o666)
	if err != nil {
		return true
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return false
	}
	held = append(held, f)
	return true
}
