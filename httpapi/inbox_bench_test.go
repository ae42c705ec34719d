package httpapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/callroom/callroom/auth"
	"github.com/callroom/callroom/inbox"
	"github.com/callroom/callroom/internal/benchutil"
)

// Secure inbox benchmarks (issue 4). Like the paging ones they need
// PostgreSQL and mean something only on a durable cluster: run them with
// `make bench`. Targets and results: docs/PERFORMANCE.md.

// BenchmarkMessageToStreams is what a care team waits for: one member POSTs
// a message to a group thread of 50 members, each of whom has their event
// stream (GET /api/v1/events) open; the latency is from the start of the
// POST to the moment the last of the 50 streams has read the message's
// message.created event. Messages are posted one at a time. Target p99 <=
// 50 ms.
func BenchmarkMessageToStreams(b *testing.B) {
	const members = 50
	ctx := context.Background()
	in := benchutil.Start(b, benchutil.Options{})
	clients := make([]*benchutil.Client, members)
	ids := make([]uuid.UUID, members)
	for i := range clients {
		role := "nurse"
		if i%2 == 1 {
			role = "physician"
		}
		clients[i] = in.User(fmt.Sprintf("Member %d", i), role)
		ids[i] = clients[i].User.ID
	}
	var thread struct{ ID uuid.UUID }
	if err := clients[0].JSON(ctx, 201, "POST", "/api/v1/threads",
		map[string]any{"kind": "group", "name": "4 West", "member_ids": ids[1:]}, &thread); err != nil {
		b.Fatal(err)
	}
	path := "/api/v1/threads/" + thread.ID.String() + "/messages"

	// One reader per stream: message id -> how many streams have read it.
	var mu sync.Mutex
	seen := map[uuid.UUID]int{}
	all := map[uuid.UUID]chan struct{}{}
	expect := func(id uuid.UUID) chan struct{} {
		mu.Lock()
		defer mu.Unlock()
		ch := make(chan struct{})
		all[id] = ch
		if seen[id] == members {
			close(ch)
		}
		return ch
	}
	for _, c := range clients {
		s, err := c.Stream(ctx)
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close() //nolint:errcheck
		go func() {
			for e := range s.Events {
				if e.Type != inbox.EventMessageCreated {
					continue
				}
				var d struct {
					MessageID uuid.UUID `json:"message_id"`
				}
				if json.Unmarshal(e.Data, &d) != nil {
					continue
				}
				mu.Lock()
				seen[d.MessageID]++
				if seen[d.MessageID] == members {
					if ch, ok := all[d.MessageID]; ok {
						close(ch)
					}
				}
				mu.Unlock()
			}
		}()
	}
	post := func(i int) (time.Duration, error) {
		start := time.Now()
		var m struct{ ID uuid.UUID }
		if err := clients[i%members].JSON(ctx, 201, "POST", path, map[string]any{"text": "bench message"}, &m); err != nil {
			return 0, err
		}
		select {
		case <-expect(m.ID):
			return time.Since(start), nil
		case <-time.After(10 * time.Second):
			return 0, fmt.Errorf("message %s: not on every stream after 10 s", m.ID)
		}
	}
	for i := range 10 { // warm up connections and plans
		if _, err := post(i); err != nil {
			b.Fatal(err)
		}
	}
	var lat benchutil.Latencies
	cpu0 := in.CPU()
	t0 := time.Now()
	i := 0
	for b.Loop() {
		d, err := post(i)
		if err != nil {
			b.Fatal(err)
		}
		lat.Add(d)
		i++
	}
	lat.Report(b, "")
	b.ReportMetric(in.CPU().Sub(cpu0).Others().Seconds()/time.Since(t0).Seconds(), "other-cores")
}

// BenchmarkEventStreams opens N concurrent event streams
// (GET /api/v1/events) on one instance, from 100 users (a user may have
// several devices), and reports what they cost the instance: Go memory in
// use (heap and stacks) and goroutines per stream, the process's resident
// memory, and the time to open them all. Target: 10,000 streams, with the
// memory stated. The clients run in a child process (this test binary
// again, TestStreamClients), so that the two ends of 10,000 connections do
// not need 20,000 file descriptors in one process, and everything measured
// here is the server's.
func BenchmarkEventStreams(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("streams=%d", n), func(b *testing.B) { eventStreams(b, n) })
	}
}

func eventStreams(b *testing.B, n int) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		b.Fatal(err)
	}
	if need := uint64(n + 1000); lim.Cur < need {
		b.Skipf("%d streams need %d file descriptors on each side; the limit is %d", n, need, lim.Cur)
	}
	in := benchutil.Start(b, benchutil.Options{})
	const users = 100
	tokens := make([]string, users)
	for i := range tokens {
		tokens[i] = in.User(fmt.Sprintf("Clinician %d", i), "nurse").Token
	}
	u, err := url.Parse(in.URL)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		runtime.GC()
		before, rss0, g0 := goMemory(), rss(), runtime.NumGoroutine()
		cmd := exec.Command(os.Args[0], "-test.run=^TestStreamClients$", "-test.count=1")
		cmd.Env = append(os.Environ(), "CALLROOM_STREAM_CLIENTS="+strconv.Itoa(n)+" "+u.Host+" "+strings.Join(tokens, ","))
		cmd.Stderr = os.Stderr
		stdin, err := cmd.StdinPipe()
		if err != nil {
			b.Fatal(err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		line, err := bufio.NewReader(stdout).ReadString('\n')
		opened := time.Since(t0)
		if err != nil || !strings.HasPrefix(line, "ready") {
			stdin.Close()
			_ = cmd.Wait()
			b.Fatalf("stream clients: %q, %v", line, err)
		}
		time.Sleep(time.Second) // let the handlers settle into waiting
		runtime.GC()
		after, rss1, g1 := goMemory(), rss(), runtime.NumGoroutine()
		per := float64(after-before) / float64(n) / 1024
		b.ReportMetric(float64(n), "streams")
		b.ReportMetric(per, "go-KiB/stream")
		b.ReportMetric(float64(after-before)/(1<<20), "go-MiB")
		b.ReportMetric(float64(g1-g0)/float64(n), "goroutines/stream")
		b.ReportMetric(opened.Seconds(), "open-s")
		b.Logf("%d streams: Go memory +%.1f MiB (%.1f KiB/stream), RSS +%.1f MiB, goroutines +%d, opened in %s",
			n, float64(after-before)/(1<<20), per, float64(rss1-rss0)/(1<<20), g1-g0, opened.Round(time.Millisecond))
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			b.Fatal(err)
		}
	}
}

// TestStreamClients is BenchmarkEventStreams' client process, and does
// nothing otherwise: it opens the streams named by CALLROOM_STREAM_CLIENTS
// ("<n> <host> <token,token,...>"), writes "ready", and holds them until its
// standard input closes.
func TestStreamClients(t *testing.T) {
	spec := os.Getenv("CALLROOM_STREAM_CLIENTS")
	if spec == "" {
		t.Skip("the client process of BenchmarkEventStreams; runs only under it")
	}
	f := strings.Fields(spec)
	n, _ := strconv.Atoi(f[0])
	host, tokens := f[1], strings.Split(f[2], ",")
	conns := make([]net.Conn, 0, n)
	var mu sync.Mutex
	var wg sync.WaitGroup
	var failed error
	sem := make(chan struct{}, 64)
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			c, err := openStream(host, tokens[i%len(tokens)])
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed = err
				return
			}
			conns = append(conns, c)
		}()
	}
	wg.Wait()
	if failed != nil {
		t.Fatalf("opened %d of %d streams: %v", len(conns), n, failed)
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	for _, c := range conns {
		c.Close()
	}
}

// openStream sends GET /api/v1/events on a new connection and reads the
// answer's header; the connection is then left unread, as an idle client's.
func openStream(host, token string) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", host, 10*time.Second)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := fmt.Fprintf(c, "GET /api/v1/events HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nAccept: text/event-stream\r\n\r\n", host, token); err != nil {
		c.Close()
		return nil, err
	}
	br := bufio.NewReaderSize(c, 512)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		c.Close()
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		c.Close()
		return nil, fmt.Errorf("GET /api/v1/events: status %d", resp.StatusCode)
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}

func goMemory() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse + m.StackInuse
}

// rss is this process's resident memory in bytes, from /proc/self/status.
func rss() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// BenchmarkPatientChart is the chart view at scale: with 1,000,000 messages
// in 100,000 patient threads in the database, a physician who is a member of
// one patient's three threads asks for
//
//   - threads: GET /api/v1/patients/{ref}/threads (the patient's thread
//     list, with members and unread counts; audited);
//   - messages: GET /api/v1/threads/{id}/messages, the first page (50
//     newest, opened from their sealed text; audited).
//
// Target: p99 <= 10 ms for each. The bulk rows are written by SQL (their
// sealed bodies are not valid ciphertext, and are never opened); the
// patient's own threads and messages are made through the store.
func BenchmarkPatientChart(b *testing.B) {
	const threads, perThread = 100_000, 10
	ctx := context.Background()
	in := benchutil.Start(b, benchutil.Options{TraceSQL: true})
	doc := in.User("Dr Chart", "physician")
	nurse := in.User("Nurse Chart", "nurse")
	who := auth.Principal{User: nurse.User}
	const ref = "Patient/bench-42"
	var first uuid.UUID
	for i := range 3 {
		t, _, err := in.Server.Inbox.CreateThread(ctx, who, inbox.NewThread{Kind: inbox.Patient, PatientRef: ref,
			MemberIDs: []uuid.UUID{doc.User.ID}})
		if err != nil {
			b.Fatal(err)
		}
		if i == 0 {
			first = t.ID
		}
		for j := range 60 {
			if _, err := in.Server.Inbox.Post(ctx, who, t.ID, inbox.NewMessage{Text: fmt.Sprintf("chart message %d/%d", i, j)}); err != nil {
				b.Fatal(err)
			}
		}
	}
	t0 := time.Now()
	if _, err := in.DB.Pool.Exec(ctx, `
		INSERT INTO threads (kind, patient_ref, created_by)
		SELECT 'patient', 'Patient/fill-' || g, $1 FROM generate_series(1, $2::int) g;
		`, nurse.User.ID, threads); err != nil {
		b.Fatal(err)
	}
	if _, err := in.DB.Pool.Exec(ctx, `
		INSERT INTO thread_members (thread_id, user_id, added_by)
		SELECT id, $1, $1 FROM threads WHERE patient_ref LIKE 'Patient/fill-%'`, nurse.User.ID); err != nil {
		b.Fatal(err)
	}
	if _, err := in.DB.Pool.Exec(ctx, `
		INSERT INTO messages (id, thread_id, author_id, priority)
		SELECT gen_random_uuid(), t.id, $1, 'routine'
		FROM threads t, generate_series(1, $2::int) g WHERE t.patient_ref LIKE 'Patient/fill-%'`, nurse.User.ID, perThread); err != nil {
		b.Fatal(err)
	}
	if _, err := in.DB.Pool.Exec(ctx, `
		INSERT INTO message_versions (message_id, version, body, key_id, created_by)
		SELECT m.id, 1, '\x00'::bytea || gen_random_uuid()::text::bytea, (SELECT key_id FROM message_versions LIMIT 1), $1
		FROM messages m JOIN threads t ON t.id = m.thread_id WHERE t.patient_ref LIKE 'Patient/fill-%'`, nurse.User.ID); err != nil {
		b.Fatal(err)
	}
	if _, err := in.DB.Pool.Exec(ctx, `ANALYZE threads, thread_members, messages, message_versions, message_receipts`); err != nil {
		b.Fatal(err)
	}
	var nm int
	if err := in.DB.Pool.QueryRow(ctx, `SELECT count(*) FROM messages`).Scan(&nm); err != nil {
		b.Fatal(err)
	}
	b.Logf("loaded %d threads and %d messages in %s", threads+3, nm, time.Since(t0).Round(time.Second))

	for _, c := range []struct{ name, path string }{
		{"threads", "/api/v1/patients/" + url.PathEscape(ref) + "/threads"},
		{"messages", "/api/v1/threads/" + first.String() + "/messages"},
	} {
		b.Run(c.name, func(b *testing.B) {
			for range 20 {
				if err := doc.JSON(ctx, 200, "GET", c.path, nil, nil); err != nil {
					b.Fatal(err)
				}
			}
			var lat benchutil.Latencies
			in.SQL.Reset()
			for b.Loop() {
				start := time.Now()
				if err := doc.JSON(ctx, 200, "GET", c.path, nil, nil); err != nil {
					b.Fatal(err)
				}
				lat.Add(time.Since(start))
			}
			lat.Report(b, "")
			b.Logf("%s: %s\n%s", c.name, lat.String(), in.SQL.Top(8))
		})
	}
}
