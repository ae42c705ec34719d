package httpapi_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/callroom/callroom/inbox"
	"github.com/callroom/callroom/internal/apitest"
	"github.com/callroom/callroom/internal/pgtest"
	"github.com/callroom/callroom/worker"
)

// uploadPNG posts content as an attachment named filename to thread path.
func uploadPNG(t *testing.T, c *apitest.Client, threadPath, filename string, content []byte) map[string]any {
	t.Helper()
	req, err := http.NewRequest("POST", c.Base+threadPath+"/attachments?filename="+url.QueryEscape(filename), bytes.NewReader(content))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Authorization", "Bearer "+c.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 201 {
		t.Fatalf("upload: %d %s", resp.StatusCode, b)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestInboxDumpHoldsNoText is issue 4's "protection at rest" check, through
// the real service and its real keyring (not a test sealer): a known
// message, its edit, and an attachment (bytes and file name) are written
// through the API, the database is dumped with pg_dump, and the dump holds
// none of them in any common encoding, though it holds their rows. Nor does
// the instance's log.
func TestInboxDumpHoldsNoText(t *testing.T) {
	t.Parallel()
	pgDump := pgtest.PgDump(t)
	in := apitest.Start(t)
	ana, ben := in.User("Dr Ana", "physician"), in.User("Ben RN", "nurse")
	th := ana.Must(201, "POST", "/api/v1/threads", map[string]any{"kind": "patient", "patient_ref": "Patient/8675309",
		"member_ids": []string{ben.User.ID.String()}})
	base := "/api/v1/threads/" + th["id"].(string)

	const first = "Zanzibar Quuxley potassium 6.8, repeat the draw"
	const second = "Zanzibar Quuxley potassium 5.1 on repeat"
	const filename = "Quuxley wound photo.png"
	marker := []byte("WOUND-PIXELS-0xC0FFEE-unique-marker")
	png := append([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00"), marker...)
	att := uploadPNG(t, ana, base, filename, png)
	m := ana.Must(201, "POST", base+"/messages", map[string]any{"text": first, "attachment_ids": []any{att["id"]}})
	ana.Must(200, "PATCH", base+"/messages/"+m["id"].(string), map[string]any{"text": second})
	if got := ben.Must(200, "GET", base+"/messages/"+m["id"].(string), nil); got["text"] != second {
		t.Fatalf("ben reads %v", got["text"])
	}

	cmd := exec.Command(pgDump, "--no-password", "--dbname", in.DB.URL)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	dump, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", pgDump, err, stderr.String())
	}
	// The rows are in the dump, so what is absent is absent because it is sealed.
	for _, id := range []string{m["id"].(string), att["id"].(string)} {
		if !bytes.Contains(dump, []byte(id)) {
			t.Fatalf("the dump does not hold row %s; the test is not looking at the right data", id)
		}
	}
	lower := bytes.ToLower(dump)
	for name, secret := range map[string][]byte{
		"the first version":       []byte(first),
		"the edited version":      []byte(second),
		"the patient's name":      []byte("Quuxley"),
		"the attachment's name":   []byte(filename),
		"the attachment's bytes":  marker,
		"a word of the text":      []byte("Zanzibar"),
		"the attachment, in part": marker[:16],
	} {
		for form, b := range map[string][]byte{
			"raw":    secret,
			"hex":    []byte(hex.EncodeToString(secret)),
			"base64": []byte(base64.StdEncoding.EncodeToString(secret)),
		} {
			if bytes.Contains(dump, b) || bytes.Contains(lower, bytes.ToLower(b)) {
				t.Errorf("the dump contains %s (%s)", name, form)
			}
		}
		if strings.Contains(in.LogText(), string(secret)) {
			t.Errorf("the log contains %s", name)
		}
	}
}

// sseReader is a client's view of GET /api/v1/events.
type sseReader struct {
	events chan map[string]string // id, event, data
	cancel context.CancelFunc
}

// streamFrom opens c's stream, with Last-Event-ID when last is not "", and
// returns once the server has subscribed (its "retry:" message).
func streamFrom(t *testing.T, c *apitest.Client, last string) *sseReader {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", c.Base+"/api/v1/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	if last != "" {
		req.Header.Set("Last-Event-ID", last)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("events: %d", resp.StatusCode)
	}
	t.Cleanup(func() { cancel(); resp.Body.Close() })
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() && sc.Text() != "" {
	}
	r := &sseReader{events: make(chan map[string]string, 100), cancel: cancel}
	go func() {
		defer close(r.events)
		e := map[string]string{}
		for sc.Scan() {
			line := sc.Text()
			if line == "" {
				if e["event"] != "" {
					r.events <- e
				}
				e = map[string]string{}
				continue
			}
			if k, v, ok := strings.Cut(line, ": "); ok && !strings.HasPrefix(line, ":") {
				e[k] = v
			}
		}
	}()
	return r
}

// next returns the next event of one of types, skipping others.
func (r *sseReader) next(t *testing.T, types ...string) map[string]string {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case e, ok := <-r.events:
			if !ok {
				t.Fatal("the stream ended")
			}
			for _, typ := range types {
				if e["event"] == typ {
					return e
				}
			}
		case <-timeout:
			t.Fatalf("no %v event within 10 s", types)
		}
	}
}

// TestMessageEventsAcrossInstances: two instances share one database; a
// message posted through one reaches a member's stream open on the other,
// as ids only, never text; a client that reconnects with Last-Event-ID gets
// every event it missed, in order, without gaps or duplicates.
func TestMessageEventsAcrossInstances(t *testing.T) {
	t.Parallel()
	a := apitest.Start(t)
	b := apitest.Start(t, apitest.Options{DB: a.DB})
	ana := a.User("Dr Ana", "physician")
	ben := a.User("Ben RN", "nurse")
	benOnB := &apitest.Client{T: t, Base: b.URL, Token: ben.Token, User: ben.User}

	th := ana.Must(201, "POST", "/api/v1/threads", map[string]any{"kind": "group", "name": "4 West",
		"member_ids": []string{ben.User.ID.String()}})
	base := "/api/v1/threads/" + th["id"].(string)
	stream := streamFrom(t, benOnB, "")

	const secret = "Quuxley in bed 12 is febrile"
	m1 := ana.Must(201, "POST", base+"/messages", map[string]any{"text": secret})
	e1 := stream.next(t, inbox.EventMessageCreated)
	if !strings.Contains(e1["data"], m1["id"].(string)) || !strings.Contains(e1["data"], th["id"].(string)) {
		t.Errorf("message.created on the other instance: %v, want ids of %v", e1, m1["id"])
	}
	if strings.Contains(e1["data"], "Quuxley") {
		t.Errorf("the event carries text: %s", e1["data"])
	}
	// Reading it from the stream is its delivery receipt.
	for deadline := time.Now().Add(10 * time.Second); ; {
		var n int
		if err := a.DB.Pool.QueryRow(context.Background(), `SELECT count(*) FROM message_receipts
			WHERE message_id = $1 AND user_id = $2 AND delivered_at IS NOT NULL`, m1["id"], ben.User.ID).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no delivery receipt for ben 10 s after the stream carried the message")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := ana.Must(200, "GET", base+"/messages/"+m1["id"].(string), nil); got["delivered_to"].(map[string]any)["count"] != float64(1) {
		t.Errorf("the author sees delivered_to %v, want 1 of 1", got["delivered_to"])
	}
	stream.cancel()

	// While ben is away: two messages and an edit, all through instance a.
	m2 := ana.Must(201, "POST", base+"/messages", map[string]any{"text": "second"})
	m3 := ana.Must(201, "POST", base+"/messages", map[string]any{"text": "third"})
	ana.Must(200, "PATCH", base+"/messages/"+m2["id"].(string), map[string]any{"text": "second, edited"})

	// Reconnecting to instance b from e1's id replays exactly what followed.
	again := streamFrom(t, benOnB, e1["id"])
	var got []map[string]string
	want := []struct{ typ, id string }{
		{inbox.EventMessageCreated, m2["id"].(string)},
		{inbox.EventMessageCreated, m3["id"].(string)},
		{inbox.EventMessageUpdated, m2["id"].(string)},
	}
	for range want {
		got = append(got, again.next(t, inbox.EventMessageCreated, inbox.EventMessageUpdated))
	}
	prev, _ := strconv.ParseInt(e1["id"], 10, 64)
	for i, e := range got {
		if e["event"] != want[i].typ || !strings.Contains(e["data"], want[i].id) {
			t.Errorf("replayed event %d: %v, want %s of %s", i, e, want[i].typ, want[i].id)
		}
		id, err := strconv.ParseInt(e["id"], 10, 64)
		if err != nil || id <= prev {
			t.Errorf("replayed event %d has id %q after %d: not increasing", i, e["id"], prev)
		}
		prev = id
	}
	// Nothing else message-related follows: no duplicates of what was replayed.
	m4 := ana.Must(201, "POST", base+"/messages", map[string]any{"text": "fourth"})
	if e := again.next(t, inbox.EventMessageCreated, inbox.EventMessageUpdated); !strings.Contains(e["data"], m4["id"].(string)) {
		t.Errorf("after the replay: %v, want message.created of the fourth message", e)
	}
}

// TestReplyToAPageInItsThread: the page filed in the patient's thread is a
// message like the others: the paged physician replies to it there, and the
// reply reaches the sending nurse's stream and shows in the thread as a
// reply to the page.
func TestReplyToAPageInItsThread(t *testing.T) {
	t.Parallel()
	in := apitest.Start(t)
	nina := in.User("Nina RN", "nurse")
	ana := in.User("Dr Ana Cruz", "physician")
	page := nina.Must(201, "POST", "/api/v1/pages", map[string]any{"user_id": ana.User.ID, "priority": "stat",
		"summary": "chest pain bed 4", "patient_ref": "Patient/123"})
	threads := inboxList(t, ana.Must(200, "GET", "/api/v1/patients/Patient%2F123/threads", nil), "threads")
	if len(threads) != 1 {
		t.Fatalf("the paged physician sees %d threads of the patient, want the one the page created", len(threads))
	}
	base := "/api/v1/threads/" + threads[0]["id"].(string)
	var filed map[string]any
	for _, m := range inboxList(t, ana.Must(200, "GET", base+"/messages", nil), "messages") {
		if m["page_id"] == page["id"] {
			filed = m
		}
	}
	if filed == nil {
		t.Fatal("the page is not in the thread")
	}
	stream := streamFrom(t, nina, "")
	reply := ana.Must(201, "POST", base+"/messages", map[string]any{"text": "on my way, get an ECG", "reply_to": filed["id"]})
	if e := stream.next(t, inbox.EventMessageCreated); !strings.Contains(e["data"], reply["id"].(string)) {
		t.Errorf("nina's stream: %v, want the reply", e)
	}
	got := inboxList(t, nina.Must(200, "GET", base+"/messages?limit=1", nil), "messages")
	if len(got) != 1 || got[0]["reply_to"] != filed["id"] || got[0]["text"] != "on my way, get an ECG" {
		t.Errorf("newest message as nina sees it: %v, want the reply to the page", got)
	}
	// Nina reading it is a receipt the author's stream hears of, by ids.
	anaStream := streamFrom(t, ana, "")
	nina.Must(200, "POST", base+"/read", map[string]any{"message_id": reply["id"]})
	e := anaStream.next(t, inbox.EventReceiptUpdated)
	for _, id := range []string{reply["id"].(string), nina.User.ID.String()} {
		if !strings.Contains(e["data"], id) {
			t.Errorf("receipt.updated on ana's stream: %v, want %s in it", e, id)
		}
	}
}

// TestRetentionRunsAsARiverJob: the purge is the instance's River job
// (inbox.purge, as the hourly periodic job inserts it): run by the
// instance's own workers, it erases the sealed text of a direct message
// older than the policy, leaves a held thread alone, and audits itself.
func TestRetentionRunsAsARiverJob(t *testing.T) {
	t.Parallel()
	in := apitest.Start(t)
	ctx := context.Background()
	admin := in.User("Ada Admin", "admin")
	ana, ben, cat := in.User("Dr Ana", "physician"), in.User("Ben RN", "nurse"), in.User("Cat RN", "nurse")
	admin.Must(200, "PUT", "/api/v1/retention-policies/direct", map[string]any{"days": 30})
	withBen := ana.Must(201, "POST", "/api/v1/threads", map[string]any{"kind": "direct", "member_ids": []string{ben.User.ID.String()}})
	withCat := ana.Must(201, "POST", "/api/v1/threads", map[string]any{"kind": "direct", "member_ids": []string{cat.User.ID.String()}})
	old := ana.Must(201, "POST", "/api/v1/threads/"+withBen["id"].(string)+"/messages", map[string]any{"text": "old news"})
	held := ana.Must(201, "POST", "/api/v1/threads/"+withCat["id"].(string)+"/messages", map[string]any{"text": "held"})
	admin.Must(200, "POST", "/api/v1/threads/"+withCat["id"].(string)+"/legal-hold", map[string]any{"legal_hold": true})
	if _, err := in.DB.Pool.Exec(ctx, `UPDATE messages SET created_at = now() - interval '31 days' WHERE id = ANY($1::uuid[])`,
		[]string{old["id"].(string), held["id"].(string)}); err != nil {
		t.Fatal(err)
	}
	audits := func() int {
		var n int
		if err := in.DB.Pool.QueryRow(ctx, `SELECT count(*) FROM audit_events WHERE action = 'retention.purge'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := audits()

	tx, err := in.DB.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := worker.InsertTx(ctx, in.Server.River, tx, inbox.PurgeArgs{}, nil); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(15 * time.Second); ; {
		var purged bool
		if err := in.DB.Pool.QueryRow(ctx, `SELECT purged_at IS NOT NULL FROM messages WHERE id = $1`, old["id"]).Scan(&purged); err != nil {
			t.Fatal(err)
		}
		if purged {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the purge job did not erase the old direct message within 15 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	var bodies int
	if err := in.DB.Pool.QueryRow(ctx, `SELECT count(*) FROM message_versions WHERE message_id = $1 AND body IS NOT NULL`, old["id"]).
		Scan(&bodies); err != nil || bodies != 0 {
		t.Errorf("%d sealed versions of the purged message left (%v)", bodies, err)
	}
	if got := ana.Must(200, "GET", "/api/v1/threads/"+withCat["id"].(string)+"/messages/"+held["id"].(string), nil); got["text"] != "held" {
		t.Errorf("a message under legal hold after the purge: %v", got)
	}
	if audits() <= before {
		t.Error("the purge was not audited")
	}
}

// TestPageChangesReachTheThread: a member of the patient's thread who was
// not paged hears of the page's changes (page.updated, ids and status only)
// on their stream, as the sender and the paged physician do.
func TestPageChangesReachTheThread(t *testing.T) {
	t.Parallel()
	in := apitest.Start(t)
	nina := in.User("Nina RN", "nurse")
	ana := in.User("Dr Ana Cruz", "physician")
	cat := in.User("Cat RN", "nurse")
	ana.Must(201, "POST", "/api/v1/threads", map[string]any{"kind": "patient", "patient_ref": "Patient/123",
		"member_ids": []any{cat.User.ID}})
	stream := streamFrom(t, cat, "")
	page := nina.Must(201, "POST", "/api/v1/pages", map[string]any{"user_id": ana.User.ID, "priority": "stat",
		"summary": "chest pain bed 4", "patient_ref": "Patient/123"})
	ana.Must(200, "POST", "/api/v1/pages/"+page["id"].(string)+"/acknowledge", nil)
	for {
		e := stream.next(t, "page.updated")
		if strings.Contains(e["data"], "chest") {
			t.Fatalf("page.updated carries the page's text: %s", e["data"])
		}
		if strings.Contains(e["data"], page["id"].(string)) && strings.Contains(e["data"], `"acknowledged"`) {
			return
		}
	}
}
