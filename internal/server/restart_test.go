package server_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callroom/callroom/internal/apitest"
	"github.com/callroom/callroom/internal/pg"
	"github.com/callroom/callroom/internal/pgtest"
)

// TestPostgresRestart stops the database under a running instance and
// starts it again: while it is down, /readyz says not ready and every
// request fails at once with 503 problem+json (none hangs); when it is back,
// /readyz recovers by itself, and paging works end to end again: the page's
// step job runs, the in-app notification reaches an event stream that was
// open before the restart (reconnecting with Last-Event-ID).
func TestPostgresRestart(t *testing.T) {
	t.Parallel()
	cluster := pgtest.StartCluster(t)
	ctx := context.Background()
	pool, err := pg.Open(ctx, cluster.URL, pg.Options{MaxConns: 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	in := apitest.Start(t, apitest.Options{DB: &pgtest.DB{Pool: pool, URL: cluster.URL, Name: "callroom"}})
	admin, nurse, doc := in.User("Avery Admin", "admin"), in.User("Nina Nurse", "nurse"), in.User("Dr A", "physician")
	pol := admin.Must(201, "POST", "/api/v1/escalation-policies", map[string]any{"name": "Cardio", "steps": []any{
		map[string]any{"delay_seconds": 600, "targets": []any{map[string]any{"user_id": doc.User.ID}}},
	}})
	svc := admin.Must(201, "POST", "/api/v1/services", map[string]any{"name": "Cardiology", "escalation_policy_id": pol["id"]})
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	stream := doc.Follow(sctx)
	page := func() string {
		return nurse.Must(201, "POST", "/api/v1/pages", map[string]any{"service_id": svc["id"], "priority": "stat", "summary": "Zorblax"})["id"].(string)
	}
	notified := func(id string) {
		t.Helper()
		deadline := time.After(30 * time.Second)
		for {
			select {
			case e := <-stream:
				if e.Type == "page.notify" && e.Data["page_id"] == id {
					return
				}
			case <-deadline:
				t.Fatalf("no page.notify for %s", id)
			}
		}
	}
	notified(page())
	if r := in.Anonymous().Do("GET", "/readyz", nil); r.Status != 200 {
		t.Fatalf("readyz before: %d", r.Status)
	}

	stopped := time.Now()
	cluster.Stop()
	t.Logf("database stopped in %s", time.Since(stopped).Round(time.Millisecond))
	client := &http.Client{Timeout: 15 * time.Second}
	var wg sync.WaitGroup
	requests := []struct{ method, path, body, token string }{
		{"GET", "/readyz", "", ""},
		{"GET", "/api/v1/pages", "", nurse.Token},
		{"POST", "/api/v1/pages", `{"service_id":"` + svc["id"].(string) + `","priority":"stat","summary":"Zorblax"}`, nurse.Token},
		{"GET", "/api/v1/me", "", doc.Token},
		{"GET", "/api/v1/events", "", doc.Token},
	}
	for round := range 3 {
		for _, rq := range requests {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var body io.Reader
				if rq.body != "" {
					body = strings.NewReader(rq.body)
				}
				req, _ := http.NewRequest(rq.method, in.URL+rq.path, body)
				if rq.token != "" {
					req.Header.Set("Authorization", "Bearer "+rq.token)
				}
				req.Header.Set("Content-Type", "application/json")
				start := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					t.Errorf("round %d %s %s: %v after %s", round, rq.method, rq.path, err, time.Since(start))
					return
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				var p struct{ Status int }
				if resp.StatusCode != 503 || resp.Header.Get("Content-Type") != "application/problem+json" ||
					json.Unmarshal(b, &p) != nil || p.Status != 503 || resp.Header.Get("Retry-After") == "" {
					t.Errorf("round %d %s %s while the database is down: %d %s %s", round, rq.method, rq.path,
						resp.StatusCode, resp.Header.Get("Content-Type"), b)
				}
				if took := time.Since(start); took > 6*time.Second {
					t.Errorf("%s %s took %s", rq.method, rq.path, took)
				}
			}()
		}
		wg.Wait()
	}

	cluster.Start()
	back := time.Now()
	deadline := time.Now().Add(30 * time.Second)
	for in.Anonymous().Do("GET", "/readyz", nil).Status != 200 {
		if time.Now().After(deadline) {
			t.Fatal("/readyz did not recover within 30 s of the database's return")
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("ready %s after the database returned", time.Since(back).Round(time.Millisecond))
	// Paging end to end, through River and the event hub.
	notified(page())
	t.Logf("a page notified %s after the database returned", time.Since(back).Round(time.Millisecond))
	if strings.Contains(in.LogText(), "Zorblax") {
		t.Error("the page's text was logged")
	}
}
