package freeport

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
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

var tries int

// A port another process was handed is not handed out while that process lives, and is
// free to claim once it has ended.
func TestAPortAnotherProcessHoldsIsNotClaimed(t *testing.T) {
	if p := os.Getenv("FREEPORT_HOLD"); p != "" { // the other process
		n, _ := strconv.Atoi(p)
		if !claim(n) {
			fmt.Println("refused")
			os.Exit(1)
		}
		fmt.Println("held")
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	tries++
	p := 60000 + (os.Getpid()+tries)%5000 // a port no other test claims (another each time: -count)
	cmd := exec.Command(os.Args[0], "-test.run", "^TestAPortAnotherProcessHoldsIsNotClaimed$")
	cmd.Env = append(os.Environ(), "FREEPORT_HOLD="+strconv.Itoa(p))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	if strings.TrimSpace(line) != "held" {
		cmd.Process.Kill()
		t.Fatalf("the other process says %q", line)
	}
	if claim(p) {
		t.Errorf("port %d claimed while another process holds it", p)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if !claim(p) {
		t.Errorf("port %d not claimed after the process holding it ended", p)
	}
}
