package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/callroom/callroom/internal/apitest"
	"github.com/callroom/callroom/internal/pgtest"
)

// serveProc is a 'callroom serve' running inside the test.
type serveProc struct {
	base string
	stop context.CancelFunc
	done chan error
}

func startServe(t *testing.T, ctx context.Context) *serveProc {
	t.Helper()
	addr := apitest.FreeAddr(t)
	sctx, stop := context.WithCancel(ctx)
	s := &serveProc{base: "http://" + addr, stop: stop, done: make(chan error, 1)}
	go func() {
		s.done <- run(sctx, []string{"serve", "--http-addr", addr, "--log-format", "text"}, nil, io.Discard, io.Discard)
	}()
	t.Cleanup(s.close)
	for deadline := time.Now().Add(15 * time.Second); ; {
		resp, err := http.Get(s.base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve never became ready: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *serveProc) close() {
	if s.stop == nil {
		return
	}
	s.stop()
	<-s.done
	s.stop = nil
}

// call sends a JSON request as token and decodes the answer.
func call(t *testing.T, base, token string, want int, method, path string, body any) map[string]any {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, base+path, r)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %d, want %d: %s", method, path, resp.StatusCode, want, b)
	}
	var out map[string]any
	json.Unmarshal(b, &out) //nolint:errcheck
	return out
}

// TestKeysRotateWhileServing is issue 4's "callroom keys rotate adds a new
// master key and re-wraps data keys without downtime", through the
// commands: a message sealed before the rotation and one posted during it
// stay readable on the instance that kept running with the old key file,
// and on an instance started afterwards with the new one; every data key
// ends up wrapped by the new master key.
func TestKeysRotateWhileServing(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	file := filepath.Join(t.TempDir(), "master.keys")
	t.Setenv("DATABASE_URL", db.URL)
	t.Setenv("CALLROOM_MASTER_KEY", "")
	t.Setenv("CALLROOM_MASTER_KEY_FILE", file)
	var out, errb bytes.Buffer
	must := func(args ...string) string {
		t.Helper()
		out.Reset()
		errb.Reset()
		if err := run(ctx, args, nil, &out, &errb); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, errb.String())
		}
		return strings.TrimSpace(out.String())
	}
	must("keys", "init", "--file", file, "--id", "first")
	must("migrate", "--log-format", "text")
	anaID := must("user", "add", "--email", "ana@example.org", "--name", "Dr Ana", "--role", "physician")
	benID := must("user", "add", "--email", "ben@example.org", "--name", "Ben RN", "--role", "nurse")
	_ = anaID
	ana := must("token", "create", "--email", "ana@example.org", "--name", "t")
	ben := must("token", "create", "--email", "ben@example.org", "--name", "t")

	old := startServe(t, ctx)
	th := call(t, old.base, ana, 201, "POST", "/api/v1/threads", map[string]any{"kind": "group", "name": "4 West", "member_ids": []string{benID}})
	msgs := "/api/v1/threads/" + th["id"].(string) + "/messages"
	before := call(t, old.base, ana, 201, "POST", msgs, map[string]any{"text": "sealed before the rotation"})

	if got := must("keys", "rotate", "--file", file, "--id", "second"); !strings.Contains(got, "re-wrapped 1 data keys") {
		t.Errorf("keys rotate printed %q", got)
	}
	// The running instance was not restarted: it still reads and writes.
	during := call(t, old.base, ana, 201, "POST", msgs, map[string]any{"text": "posted after the rotation"})
	for _, m := range []map[string]any{before, during} {
		if got := call(t, old.base, ben, 200, "GET", msgs+"/"+m["id"].(string), nil); got["text"] != m["text"] {
			t.Errorf("the running instance reads %v, want %q", got["text"], m["text"])
		}
	}
	old.close()

	// An instance started with the new file reads both.
	fresh := startServe(t, ctx)
	for _, m := range []map[string]any{before, during} {
		if got := call(t, fresh.base, ben, 200, "GET", msgs+"/"+m["id"].(string), nil); got["text"] != m["text"] {
			t.Errorf("an instance with the new key file reads %v, want %q", got["text"], m["text"])
		}
	}
	var masters []string
	rows, err := db.Pool.Query(ctx, `SELECT DISTINCT master_key_id FROM data_keys`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var m string
		rows.Scan(&m) //nolint:errcheck
		masters = append(masters, m)
	}
	if fmt.Sprint(masters) != "[second]" {
		t.Errorf("data keys wrapped by %v, want only the new master key", masters)
	}
}
