package store

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/immunity-app/immunity/internal/pgtest"
)

// pausedHolderEnv makes the test binary the paused holder of
// TestAPausedHolderInATransactionIsTakenOverByItsLease instead of running tests: its value
// is the database's URL (pausedHolder).
const pausedHolderEnv = "IMMUNITY_TEST_PAUSED_HOLDER"

// pausedLeaseTTL is the lease of the paused-holder test: the holder's and the heir's.
const pausedLeaseTTL = 2 * time.Second

// A replica paused (SIGSTOP, a VM frozen) in the middle of a fenced transaction on
// PostgreSQL holds the lease's row, share-locked by the transaction's fence, and the rows
// it wrote. The heir must not wait for the pause to end: PostgreSQL ends the paused
// session once it has sat idle in its transaction for the lease's time, its locks go, the
// heir takes the lease and writes the rows the paused one had locked. When the paused
// holder resumes, its transaction is gone: its next write and its commit fail with
// ErrLeaseLost, and nothing it wrote, before or after the pause, is in the database.
func TestAPausedHolderInATransactionIsTakenOverByItsLease(t *testing.T) {
	db := pgtest.Database(t)
	ctx := t.Context()
	st := open(t, db)
	st.SetLeaseTTL(pausedLeaseTTL)
	r, err := st.CreateRun(ctx, Run{App: "papi", SHA: "1a2b3c", State: RunRunning}, []string{"prod"}, map[string][]string{"prod": {"host1"}})
	if err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), pausedHolderEnv+"="+db, "IMMUNITY_TEST_PAUSED_RUN="+strconv.FormatInt(r.ID, 10))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := make(chan string, 16)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		io.Copy(io.Discard, out)
	}()
	var token int64
	var idle string
	select {
	case line, ok := <-lines:
		if _, err := fmt.Sscanf(line, "in transaction, token %d, idle_in_transaction_session_timeout %s", &token, &idle); !ok || err != nil {
			t.Fatalf("the holder said %q (%v) before its pause; want it in its transaction", line, err)
		}
		// The session was opened before the lease's time was set (migrations): it has it.
		if idle != "2s" {
			t.Fatalf("the holder's session has idle_in_transaction_session_timeout %s; want the lease's %s", idle, pausedLeaseTTL)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("the holder never began its transaction")
	}
	waitFor(t, "the holder to stop", 2*time.Minute, func() bool { return processStopped(cmd.Process.Pid) })
	stopped := time.Now()

	// The heir holds the lease as a replica does, and takes it once it can.
	h := st.Hold(ctx, "engine/papi", pausedLeaseTTL)
	var heir Lease
	waitFor(t, "the heir to take the lease over from the paused holder", 2*time.Minute, func() bool {
		var held bool
		heir, held = h.Lease()
		return held
	})
	t.Logf("the heir took the lease over %s after the holder was paused in its transaction (lease %s)",
		time.Since(stopped).Round(10*time.Millisecond), pausedLeaseTTL)
	if heir.Token <= token {
		t.Fatalf("the heir holds token %d; the paused holder had %d", heir.Token, token)
	}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := st.SetRunState(WithLease(wctx, heir), r.ID, RunSucceeded, "finished by the heir"); err != nil {
		t.Fatalf("the heir's write of the run the paused holder had written: %v", err)
	}

	if err := cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	var outcome string
	for line := range lines {
		outcome = line
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("the holder: %v", err)
	}
	if !strings.HasPrefix(outcome, "lease lost: ") {
		t.Fatalf("the resumed holder's transaction ended %q; want it failed with ErrLeaseLost", outcome)
	}
	t.Logf("the resumed holder: %s", outcome)
	got, err := st.Run(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != RunSucceeded || got.Message != "finished by the heir" {
		t.Fatalf("the run is %s %q; want the heir's write alone (succeeded, finished by the heir)", got.State, got.Message)
	}
	if l, err := st.ReadLease(ctx, "engine/papi"); err != nil || l.Token != heir.Token || l.Holder != st.Replica() {
		t.Fatalf("the lease is %+v (%v); want the heir's %+v", l, err, heir)
	}
}

// pausedHolder is the paused holder: it claims the app's lease and, in a fenced
// transaction, writes the run, says so on stdout and stops itself (SIGSTOP). Resumed, it
// writes the run again and commits, and prints how the transaction ended.
func pausedHolder() int {
	ctx := context.Background()
	st, err := Open(ctx, os.Getenv(pausedHolderEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer st.Close()
	st.SetLeaseTTL(pausedLeaseTTL)
	run, _ := strconv.ParseInt(os.Getenv("IMMUNITY_TEST_PAUSED_RUN"), 10, 64)
	l, ok, err := st.ClaimLease(ctx, "engine/papi", st.Replica(), pausedLeaseTTL)
	if err != nil || !ok {
		fmt.Fprintf(os.Stderr, "claim: %v %v\n", ok, err)
		return 1
	}
	err = st.tx(WithLease(ctx, l), func(tx tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE runs SET state = ?, message = ? WHERE id = ?`, RunFailed, "failed by the paused holder", run); err != nil {
			return err
		}
		var idle string
		if err := tx.QueryRowContext(ctx, `SHOW idle_in_transaction_session_timeout`).Scan(&idle); err != nil {
			return err
		}
		cont := make(chan os.Signal, 1)
		signal.Notify(cont, syscall.SIGCONT)
		fmt.Printf("in transaction, token %d, idle_in_transaction_session_timeout %s\n", l.Token, idle)
		syscall.Kill(os.Getpid(), syscall.SIGSTOP)
		<-cont
		_, err := tx.ExecContext(ctx, `UPDATE runs SET message = ? WHERE id = ?`, "written by the resumed holder", run)
		return err
	})
	switch {
	case errors.Is(err, ErrLeaseLost):
		fmt.Printf("lease lost: %v\n", err)
	case err != nil:
		fmt.Printf("failed: %v\n", err)
	default:
		fmt.Println("committed")
	}
	return 0
}

// processStopped reports whether process pid is stopped (SIGSTOP).
func processStopped(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i >= 0 && i+2 < len(b) && b[i+2] == 'T'
}

// waitFor waits until cond holds, failing the test after timeout.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", timeout, what)
		}
	}
}
