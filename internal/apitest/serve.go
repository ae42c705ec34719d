package apitest

import (
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Process is 'callroom serve' running as a real process (Binary), for tests
// that kill it (kill -9, SIGSTOP) or run several instances on one database.
type Process struct {
	URL     string // http://host:port
	Cmd     *exec.Cmd
	LogPath string
	done    chan struct{}
}

// Serve runs 'callroom serve' on the database at dbURL, with env (KEY=value)
// added to a clean environment (no DATABASE_URL or CALLROOM_* of the
// test's), appending its output to logPath, and waits until it answers
// /readyz. It is stopped when the test ends, and its log's end printed if
// the test failed.
func Serve(t testing.TB, dbURL, logPath string, env ...string) *Process {
	t.Helper()
	addr := FreeAddr(t)
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(Binary(t), "serve")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DATABASE_URL=") && !strings.HasPrefix(kv, "CALLROOM_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "DATABASE_URL="+dbURL, "CALLROOM_HTTP_ADDR="+addr, "CALLROOM_MASTER_KEY="+TestMasterKey)
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &Process{URL: "http://" + addr, Cmd: cmd, LogPath: logPath, done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }() //nolint:errcheck
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("callroom serve log (end):\n%s", p.LogTail())
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(p.URL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		select {
		case <-p.done:
			t.Fatalf("callroom serve exited:\n%s", p.LogTail())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("callroom serve not ready after 60 s:\n%s", p.LogTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Kill is kill -9: no drain, no deferred cleanup, open transactions lost.
func (p *Process) Kill() {
	p.Cmd.Process.Signal(syscall.SIGKILL) //nolint:errcheck
	<-p.done
}

// Stop asks the process to shut down (SIGTERM) and waits for it, killing
// it after 30 s.
func (p *Process) Stop() {
	select {
	case <-p.done:
		return
	default:
	}
	p.Cmd.Process.Signal(syscall.SIGTERM) //nolint:errcheck
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.Kill()
	}
}

// Exited is closed when the process has ended.
func (p *Process) Exited() <-chan struct{} { return p.done }

// LogTail is the last 4,000 bytes of the process's log.
func (p *Process) LogTail() string {
	b, _ := os.ReadFile(p.LogPath)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// FreeAddr returns a loopback address nothing listens on (it was free a
// moment ago): for a server to listen on, or a relay that is down.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
