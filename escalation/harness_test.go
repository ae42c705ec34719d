package escalation_test

// The reliability harness: a whole callroom instance on its own PostgreSQL
// database, a real SMTP relay and real webhook receivers on 127.0.0.1, and a
// ledger of the notifications each page must have. Like GoAlert's smoke
// harness, it fails the test on any notification nobody expected: expect()
// waits until a page's notifications are exactly the expected ones, and when
// the test ends every notification in the database is checked against the
// ledger once more, so a notification that appears late is caught too.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callroom/callroom/internal/apitest"
	"github.com/callroom/callroom/internal/smtptest"
	"github.com/callroom/callroom/notify"
)

// waitCap bounds every "wait until": generous, so a loaded two-core machine
// is not mistaken for a bug; nothing asserts how fast anything happened.
const waitCap = 20 * time.Second

// eventually polls cond until it holds, failing the test after waitCap with
// what and cond's last explanation.
func eventually(t testing.TB, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(waitCap)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not so within %s: %s", what, waitCap, why)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// note is one notification as the harness sees it.
type note struct {
	User    string // the user's name
	Channel string
	Round   int
	Step    int
	Status  string
}

func (n note) String() string {
	return fmt.Sprintf("%s %s round %d step %d %s", n.User, n.Channel, n.Round, n.Step, n.Status)
}

type harness struct {
	t     *testing.T
	in    *apitest.Instance
	admin *apitest.Client
	nurse *apitest.Client

	mu       sync.Mutex
	expected map[uuid.UUID][]note // page -> exactly its notifications
}

// newHarness starts an instance with an administrator and a nurse (who
// sends the pages) and checks, when the test ends, that no page has a
// notification the test did not expect.
func newHarness(t *testing.T, opt ...apitest.Options) *harness {
	t.Helper()
	in := apitest.Start(t, opt...)
	h := &harness{t: t, in: in, expected: map[uuid.UUID][]note{}}
	h.admin = in.User("Avery Admin", "admin")
	h.nurse = in.User("Nina Nurse", "nurse")
	t.Cleanup(func() {
		if t.Failed() || t.Skipped() {
			return
		}
		h.checkAll()
	})
	return h
}

// notes reads a page's notifications, sorted.
func (h *harness) notes(page uuid.UUID) []note {
	h.t.Helper()
	rows, _ := h.in.DB.Pool.Query(context.Background(), `SELECT u.name, n.channel, n.round, n.step, n.status
		FROM notifications n JOIN users u ON u.id = n.user_id WHERE n.page_id = $1`, page)
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[note])
	if err != nil {
		h.t.Fatal(err)
	}
	sortNotes(out)
	return out
}

func sortNotes(ns []note) {
	slices.SortFunc(ns, func(a, b note) int { return strings.Compare(a.String(), b.String()) })
}

// diff explains how got differs from want, or returns "".
func diff(want, got []note) string {
	w, g := map[string]int{}, map[string]int{}
	for _, n := range want {
		w[n.String()]++
	}
	for _, n := range got {
		g[n.String()]++
	}
	var missing, extra []string
	for k, c := range w {
		for i := g[k]; i < c; i++ {
			missing = append(missing, k)
		}
	}
	for k, c := range g {
		for i := w[k]; i < c; i++ {
			extra = append(extra, k)
		}
	}
	if len(missing) == 0 && len(extra) == 0 {
		return ""
	}
	slices.Sort(missing)
	slices.Sort(extra)
	return fmt.Sprintf("missing %q; unexpected %q", missing, extra)
}

// expect records that page must have exactly want (in any order) and waits
// until it does.
func (h *harness) expect(page uuid.UUID, want ...note) {
	h.t.Helper()
	want = slices.Clone(want)
	sortNotes(want)
	h.mu.Lock()
	h.expected[page] = want
	h.mu.Unlock()
	eventually(h.t, "notifications of page "+page.String(), func() (bool, string) {
		d := diff(want, h.notes(page))
		return d == "", d
	})
}

// checkAll compares every notification in the database with the ledger.
func (h *harness) checkAll() {
	h.t.Helper()
	rows, _ := h.in.DB.Pool.Query(context.Background(), `SELECT DISTINCT page_id FROM notifications`)
	pages, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		h.t.Fatal(err)
	}
	// A step job never fails, and no job fails on the database (a deadlock,
	// a constraint): the only errors allowed are deliveries that failed.
	rows, _ = h.in.DB.Pool.Query(context.Background(), `SELECT kind || ': ' || (e->>'error')
		FROM river_job, unnest(errors) AS e WHERE kind LIKE 'escalation.%'
		AND (kind = 'escalation.step' OR e->>'error' LIKE '%SQLSTATE%')`)
	jobErrs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		h.t.Fatal(err)
	}
	for _, e := range jobErrs {
		h.t.Errorf("job error: %s", e)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, p := range pages {
		want, ok := h.expected[p]
		if !ok {
			h.t.Errorf("page %s has notifications nobody expected: %v", p, h.notes(p))
			continue
		}
		if d := diff(want, h.notes(p)); d != "" {
			h.t.Errorf("page %s at the end of the test: %s", p, d)
		}
	}
}

// settle waits until no escalation or delivery job is running, waiting to
// run, or due within the next minute: every timed thing a test set in
// motion (steps with short delays, delayed notification rules, retries) has
// happened or been cancelled. Then the ledger is checked again, so "nothing
// more" is asserted without sleeping.
func (h *harness) settle() {
	h.t.Helper()
	eventually(h.t, "escalation and delivery jobs settle", func() (bool, string) {
		n := h.count(`SELECT count(*) FROM river_job WHERE kind LIKE 'escalation.%'
			AND state IN ('available', 'running', 'retryable', 'scheduled', 'pending')
			AND scheduled_at < now() + interval '1 minute'`)
		return n == 0, fmt.Sprintf("%d jobs pending", n)
	})
	h.checkAll()
}

// count runs a count query.
func (h *harness) count(sql string, args ...any) int {
	h.t.Helper()
	return countRows(h.t, h.in, sql, args...)
}

func countRows(t testing.TB, in *apitest.Instance, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := in.DB.Pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// user makes a physician (unless roles say otherwise).
func (h *harness) user(name string, roles ...string) *apitest.Client {
	if len(roles) == 0 {
		roles = []string{"physician"}
	}
	return h.in.User(name, roles...)
}

// step is one rung of a policy under test.
type step struct {
	delay   int
	targets []any
}

func userT(c *apitest.Client) map[string]any { return map[string]any{"user_id": c.User.ID} }
func schedT(id string) map[string]any        { return map[string]any{"schedule_id": id} }

// service creates an escalation policy and a service paging through it, and
// returns the service id.
func (h *harness) service(name string, repeat int, fallback *apitest.Client, steps ...step) string {
	h.t.Helper()
	var ss []any
	for _, s := range steps {
		ss = append(ss, map[string]any{"delay_seconds": s.delay, "targets": s.targets})
	}
	body := map[string]any{"name": name, "repeat": repeat, "steps": ss}
	if fallback != nil {
		body["fallback"] = userT(fallback)
	}
	pol := h.admin.Must(201, "POST", "/api/v1/escalation-policies", body)
	svc := h.admin.Must(201, "POST", "/api/v1/services", map[string]any{"name": name, "escalation_policy_id": pol["id"]})
	return svc["id"].(string)
}

// page sends a page to a service as the nurse.
func (h *harness) page(service, priority, summary string) uuid.UUID {
	h.t.Helper()
	p := h.nurse.Must(201, "POST", "/api/v1/pages", map[string]any{"service_id": service, "priority": priority,
		"summary": summary, "body": "Body text: " + summary, "patient_ref": "Patient/mrn-4471"})
	return uuid.MustParse(p["id"].(string))
}

// contact adds a contact method for c (as c) and returns its id.
func contact(c *apitest.Client, kind, address, secret string) string {
	c.T.Helper()
	body := map[string]any{"kind": kind, "label": kind}
	if address != "" {
		body["address"] = address
	}
	if secret != "" {
		body["secret"] = secret
	}
	m := c.Must(201, "POST", "/api/v1/users/"+c.User.ID.String()+"/contact-methods", body)
	return m["id"].(string)
}

// rule adds a notification rule for c (as c).
func rule(c *apitest.Client, method string, delay int) {
	c.T.Helper()
	c.Must(201, "POST", "/api/v1/users/"+c.User.ID.String()+"/notification-rules",
		map[string]any{"contact_method_id": method, "delay_seconds": delay})
}

// pageRow reads what the tests need of a page straight from the database.
type pageRow struct {
	Status string
	Step   int
	Round  int
}

func (h *harness) pageRow(page uuid.UUID) pageRow {
	h.t.Helper()
	var p pageRow
	if err := h.in.DB.Pool.QueryRow(context.Background(), `SELECT status, step, round FROM pages WHERE id = $1`, page).
		Scan(&p.Status, &p.Step, &p.Round); err != nil {
		h.t.Fatal(err)
	}
	return p
}

// event is one timeline entry, reduced.
type event struct {
	Kind   string
	Round  *int
	Step   *int
	Detail string
}

func (h *harness) timeline(page uuid.UUID) []event {
	h.t.Helper()
	rows, _ := h.in.DB.Pool.Query(context.Background(), `SELECT kind, round, step, detail FROM page_events WHERE page_id = $1 ORDER BY id`, page)
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[event])
	if err != nil {
		h.t.Fatal(err)
	}
	return out
}

// kinds lists the timeline's kinds, with @round.step where the entry has a
// step. Entries written by delivery ("notified", "delivered", "failed",
// "read") are left out: they are asynchronous to the escalation, so their
// place among its entries is not fixed. ofKind counts them.
func kinds(es []event) []string {
	var out []string
	for _, e := range es {
		switch e.Kind {
		case "notified", "delivered", "failed", "read":
			continue
		}
		s := e.Kind
		if e.Step != nil {
			s += fmt.Sprintf("@%d.%d", *e.Round, *e.Step)
		}
		out = append(out, s)
	}
	return out
}

func ofKind(es []event, kind string) int {
	n := 0
	for _, e := range es {
		if e.Kind == kind {
			n++
		}
	}
	return n
}

// action POSTs a page action as c and returns the status.
func action(c *apitest.Client, page uuid.UUID, verb string, body any) apitest.Response {
	c.T.Helper()
	return c.Do("POST", "/api/v1/pages/"+page.String()+"/"+verb, body)
}

// --- requests safe from any goroutine (Client.Do may call t.Fatal) ---

func newJSONRequest(c *apitest.Client, method, path, body string) (*http.Request, error) {
	req, err := http.NewRequest(method, c.Base+path, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+c.Token)
	return req, nil
}

// doJSON sends req and decodes a JSON answer into v (if not nil).
func doJSON(req *http.Request, v any) (int, error) {
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if v != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, v); err != nil {
			return resp.StatusCode, err
		}
	}
	return resp.StatusCode, nil
}

func rawPost(c *apitest.Client, path, body string) (int, error) {
	req, err := newJSONRequest(c, "POST", path, body)
	if err != nil {
		return 0, err
	}
	return doJSON(req, nil)
}

// --- a real SMTP relay ---

// closedAddr is a loopback address nothing listens on: a relay that is down.
var closedAddr = apitest.FreeAddr

// --- a real webhook receiver ---

const hookSecret = "0123456789abcdef-webhook-secret"

type hookCall struct {
	Body           []byte
	Payload        notify.WebhookPayload
	IdempotencyKey string
	SignatureErr   error
}

// webhookReceiver is a gateway on 127.0.0.1 that verifies every request's
// signature and answers status.
type webhookReceiver struct {
	URL    string
	status int
	mu     sync.Mutex
	calls  []hookCall
}

func startWebhook(t *testing.T, status int) *webhookReceiver {
	t.Helper()
	w := &webhookReceiver{status: status}
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		c := hookCall{Body: body, IdempotencyKey: r.Header.Get(notify.HeaderIdempotencyKey)}
		c.SignatureErr = notify.VerifyWebhookSignature([]byte(hookSecret), r.Header.Get(notify.HeaderWebhookTime), body,
			r.Header.Get(notify.HeaderWebhookSignature), time.Now(), 5*time.Minute)
		if err := json.Unmarshal(body, &c.Payload); err != nil && c.SignatureErr == nil {
			c.SignatureErr = err
		}
		w.mu.Lock()
		w.calls = append(w.calls, c)
		w.mu.Unlock()
		rw.WriteHeader(w.status)
	}))
	t.Cleanup(srv.Close)
	w.URL = srv.URL + "/gateway"
	return w
}

func (w *webhookReceiver) received() []hookCall {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.calls)
}

// checkHook fails unless every call is authentic, about page, and carries
// nothing but the payload's fields (no page text, no patient).
func checkHook(t *testing.T, calls []hookCall, page uuid.UUID, phi ...string) {
	t.Helper()
	for i, c := range calls {
		if c.SignatureErr != nil {
			t.Errorf("webhook call %d: signature: %v", i, c.SignatureErr)
		}
		if c.Payload.PageID != page || c.Payload.Event != notify.WebhookEvent {
			t.Errorf("webhook call %d: payload %+v, want page %s", i, c.Payload, page)
		}
		var fields map[string]any
		json.Unmarshal(c.Body, &fields) //nolint:errcheck
		for k := range fields {
			switch k {
			case "event", "notification_id", "page_id", "priority", "service", "link", "created_at":
			default:
				t.Errorf("webhook call %d carries field %q", i, k)
			}
		}
		for _, s := range phi {
			if strings.Contains(string(c.Body), s) {
				t.Errorf("webhook call %d carries %q: %s", i, s, c.Body)
			}
		}
	}
}

// checkMail fails if a message carries any of phi.
func checkMail(t *testing.T, msgs []smtptest.Mail, phi ...string) {
	t.Helper()
	for i, m := range msgs {
		// Undo quoted-printable soft line breaks, which could split a word.
		text := strings.ReplaceAll(m.Data, "=\r\n", "")
		for _, s := range phi {
			if strings.Contains(text, s) {
				t.Errorf("email %d carries %q", i, s)
			}
		}
	}
}
