package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/callroom/callroom/internal/pgtest"
)

// TestCommands runs the subcommands as a new user would: migrate (again, on
// an already migrated database), user add, token create, then serve until
// shutdown, using the token against the API.
func TestCommands(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	t.Setenv("DATABASE_URL", db.URL)
	t.Setenv("CALLROOM_MASTER_KEY", "test:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
	var out, errb bytes.Buffer
	if err := run(ctx, []string{"migrate", "--log-format", "text"}, nil, &out, &errb); err != nil {
		t.Fatalf("migrate: %v\n%s", err, errb.String())
	}
	out.Reset()
	err := run(ctx, []string{"user", "add", "--email", "Ana@Example.org", "--name", "Dr Ana", "--role", "physician,admin", "--password-stdin"},
		strings.NewReader("a long password\n"), &out, &errb)
	if err != nil {
		t.Fatalf("user add: %v", err)
	}
	if len(strings.TrimSpace(out.String())) != 36 {
		t.Fatalf("user add printed %q, want the new user's id", out.String())
	}
	if err := run(ctx, []string{"user", "add", "--email", "x@example.org", "--name", "X", "--role", "surgeon"}, nil, &out, &errb); err == nil ||
		!strings.Contains(err.Error(), "roles") {
		t.Fatalf("unknown role: %v", err)
	}
	out.Reset()
	if err := run(ctx, []string{"token", "create", "--email", "ana@example.org", "--name", "ci"}, nil, &out, &errb); err != nil {
		t.Fatalf("token create: %v", err)
	}
	token := out.String()
	if !strings.HasPrefix(token, "crt_") || strings.Count(token, "\n") != 1 || len(strings.TrimSpace(token)) < 40 {
		t.Fatalf("token create printed %q, want only the token", token)
	}
	token = strings.TrimSpace(token)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	sctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	var serveLog bytes.Buffer
	go func() {
		done <- run(sctx, []string{"serve", "--http-addr", addr, "--log-format", "text"}, nil, &out, &serveLog)
	}()
	base := "http://" + addr
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil && resp.StatusCode == 200 {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve never became ready: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	req, _ := http.NewRequest("GET", base+"/api/v1/me", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("token does not work against serve: %v %v", err, resp)
	}
	resp.Body.Close()
	stop() // what SIGTERM does
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
	}
	if !strings.Contains(serveLog.String(), "shutting down") {
		t.Errorf("no shutdown in the log:\n%s", serveLog.String())
	}
}

func TestNoDatabaseSaysWhatToDo(t *testing.T) {
	t.Setenv("DATABASE_URL", "")
	var out, errb bytes.Buffer
	err := run(context.Background(), []string{"migrate"}, nil, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "DATABASE_URL") {
		t.Fatalf("got %v, want advice to set DATABASE_URL", err)
	}
}
