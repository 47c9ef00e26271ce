package freeport

import (
	"net"
	"strconv"
	"testing"
)

// Ports come from below the ephemeral range, can be listened on, and are not repeated.
func TestPortsAreFreeBelowTheEphemeralRangeAndNotRepeated(t *testing.T) {
	top := ranges()
	seen := map[int]bool{}
	for range 300 {
		p, err := Get()
		if err != nil {
			t.Fatal(err)
		}
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
		if top-lowest >= 1000 && (p < lowest || p >= top) {
			t.Fatalf("port %d is outside [%d, %d)", p, lowest, top)
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			t.Fatalf("port %d from Get cannot be listened on: %v", p, err)
		}
		l.Close()
	}
}

// A port something listens on is never handed out.
func TestAPortInUseIsNotHandedOut(t *testing.T) {
	var held []net.Listener
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	busy := map[int]bool{}
	for range 50 {
		p, err := Get()
		if err != nil {
			t.Fatal(err)
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, l)
		busy[p] = true
	}
	mu.Lock()
	for p := range busy {
		delete(given, p) // forget them: only the bind check can refuse them now
	}
	mu.Unlock()
	for range 2000 {
		p, err := Get()
		if err != nil {
			t.Fatal(err)
		}
		if busy[p] {
			t.Fatalf("port %d is listened on and was handed out", p)
		}
	}
}
