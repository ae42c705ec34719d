package escalation_test

// GoAlert-style escalation scenarios: each asserts exactly which
// notifications exist (user, channel, round, step, status), and the harness
// fails on anything more.

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/callroom/callroom/internal/apitest"
	"github.com/callroom/callroom/internal/smtptest"
)

// Text a page carries that must never leave callroom in an email or webhook.
var phi = []string{"Zorblax", "Body text", "mrn-4471"}

func sent(user, channel string, round, step int) note {
	return note{user, channel, round, step, "sent"}
}

// noteTime reads a timestamp column of user's notification on channel for
// (round, step).
func (h *harness) noteTime(page uuid.UUID, user *apitest.Client, channel string, round, step int, column string) time.Time {
	h.t.Helper()
	var at time.Time
	err := h.in.DB.Pool.QueryRow(context.Background(), `SELECT `+column+` FROM notifications
		WHERE page_id = $1 AND user_id = $2 AND channel = $3 AND round = $4 AND step = $5`,
		page, user.User.ID, channel, round, step).Scan(&at)
	if err != nil {
		h.t.Fatalf("%s of %s's %s notification (round %d step %d): %v", column, user.User.Name, channel, round, step, err)
	}
	return at
}

// acknowledgedAt reads when the page was acknowledged (by the database clock).
func (h *harness) acknowledgedAt(page uuid.UUID) time.Time {
	h.t.Helper()
	var at time.Time
	if err := h.in.DB.Pool.QueryRow(context.Background(), `SELECT acknowledged_at FROM pages WHERE id = $1`, page).Scan(&at); err != nil {
		h.t.Fatal(err)
	}
	return at
}

// waitNotified waits until user has a notification on page (any status).
func (h *harness) waitNotified(page uuid.UUID, user *apitest.Client) {
	h.t.Helper()
	eventually(h.t, user.User.Name+" notified", func() (bool, string) {
		n := h.count(`SELECT count(*) FROM notifications WHERE page_id = $1 AND user_id = $2 AND status <> 'queued'`, page, user.User.ID)
		return n > 0, "no notification yet"
	})
}

// (a) A is notified at once, B after the step delay, and when the chain ends
// unanswered without a fallback nothing else is sent.
func TestScenarioTwoStepEscalation(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b := h.user("Dr A"), h.user("Dr B")
	svc := h.service("Cardiology", 0, nil, step{1, []any{userT(a)}}, step{2, []any{userT(b)}})
	p := h.page(svc, "urgent", "chest pain Zorblax")

	h.expect(p, sent("Dr A", "in_app", 0, 0), sent("Dr B", "in_app", 0, 1))
	ta := h.noteTime(p, a, "in_app", 0, 0, "created_at")
	tb := h.noteTime(p, b, "in_app", 0, 1, "created_at")
	if tb.Sub(ta) < time.Second {
		t.Errorf("B was notified %s after A, before the 1 s step delay", tb.Sub(ta))
	}
	eventually(t, "the page goes unanswered", func() (bool, string) {
		st := h.pageRow(p).Status
		return st == "unanswered", st
	})
	h.settle()
	tl := h.timeline(p)
	want := []string{"created", "step@0.0", "step@0.1", "unanswered", "no_fallback"}
	if got := kinds(tl); !slices.Equal(got, want) || ofKind(tl, "notified") != 2 {
		t.Errorf("timeline %v with %d notified, want %v and 2", got, ofKind(tl, "notified"), want)
	}
}

// (b) Notification rules: in-app at 0 s, email at 2 s through a real relay.
// Unanswered, both go out; acknowledged before the email is due, the email
// is cancelled and the relay receives nothing.
func TestScenarioNotificationRules(t *testing.T) {
	t.Parallel()
	for _, ack := range []bool{false, true} {
		t.Run(fmt.Sprintf("acknowledged=%v", ack), func(t *testing.T) {
			t.Parallel()
			relay := smtptest.StartRelay(t)
			h := newHarness(t, apitest.Options{SMTPRelay: relay.Addr})
			a := h.user("Dr A")
			inApp := contact(a, "in_app", "", "")
			rule(a, inApp, 0)
			email := contact(a, "email", "dr.a@hospital.test", "")
			rule(a, email, 2)
			svc := h.service("Cardiology", 0, nil, step{3600, []any{userT(a)}})
			p := h.page(svc, "routine", "chest pain Zorblax")

			if !ack {
				h.expect(p, sent("Dr A", "in_app", 0, 0), note{"Dr A", "email", 0, 0, "delivered"})
				if d := h.noteTime(p, a, "email", 0, 0, "due_at").Sub(h.noteTime(p, a, "in_app", 0, 0, "due_at")); d != 2*time.Second {
					t.Errorf("the email was due %s after the in-app notification, want the rule's 2 s", d)
				}
				h.settle()
				msgs := relay.Messages()
				if len(msgs) != 1 || !slices.Equal(msgs[0].To, []string{"dr.a@hospital.test"}) {
					t.Fatalf("relay received %+v, want one message to dr.a@hospital.test", msgs)
				}
				checkMail(t, msgs, phi...)
				return
			}

			h.waitNotified(p, a)
			if r := action(a, p, "acknowledge", nil); r.Status != 200 {
				t.Fatalf("acknowledge: %d %s", r.Status, r.Body)
			}
			if due := h.noteTime(p, a, "email", 0, 0, "due_at"); !h.acknowledgedAt(p).Before(due) {
				t.Skipf("the machine was too slow: the acknowledgement came after the email was due")
			}
			h.expect(p, sent("Dr A", "in_app", 0, 0), note{"Dr A", "email", 0, 0, "cancelled"})
			h.settle() // the email's delivery job ran at its due time and found it cancelled
			if msgs := relay.Messages(); len(msgs) != 0 {
				t.Errorf("relay received %d messages after the acknowledgement", len(msgs))
			}
		})
	}
}

// (c) Two rules on one contact method (1 s and 2 s): after a manual jump to
// the next step, that method is used once for the step.
func TestScenarioTwoRulesOneMethodAfterEscalate(t *testing.T) {
	t.Parallel()
	relay := smtptest.StartRelay(t)
	h := newHarness(t, apitest.Options{SMTPRelay: relay.Addr})
	x, a := h.user("Dr X"), h.user("Dr A")
	email := contact(a, "email", "dr.a@hospital.test", "")
	rule(a, email, 1)
	rule(a, email, 2)
	svc := h.service("Cardiology", 0, nil, step{3600, []any{userT(x)}}, step{3600, []any{userT(a)}})
	p := h.page(svc, "urgent", "chest pain Zorblax")
	h.expect(p, sent("Dr X", "in_app", 0, 0))

	r := action(h.nurse, p, "escalate", map[string]any{"from_round": 0, "from_step": 0})
	if r.Status != 200 || r.JSON["step"] != float64(1) {
		t.Fatalf("escalate: %d %s", r.Status, r.Body)
	}
	h.expect(p, sent("Dr X", "in_app", 0, 0), sent("Dr A", "in_app", 0, 1), note{"Dr A", "email", 0, 1, "delivered"})
	if d := h.noteTime(p, a, "email", 0, 1, "due_at").Sub(h.noteTime(p, a, "in_app", 0, 1, "due_at")); d != time.Second {
		t.Errorf("the email was due %s after the step, want the smaller rule's 1 s", d)
	}
	h.settle()
	if msgs := relay.Messages(); len(msgs) != 1 {
		t.Errorf("relay received %d messages, want 1", len(msgs))
	}
	if n := h.count(`SELECT count(*) FROM page_events WHERE page_id = $1 AND kind = 'escalated'`, p); n != 1 {
		t.Errorf("%d escalated entries", n)
	}
}

// (d) An acknowledged page sends nothing more: not the acknowledger's
// delayed email, not the next step, not the repeat, not the fallback.
func TestScenarioAcknowledgedSendsNothingMore(t *testing.T) {
	t.Parallel()
	relay := smtptest.StartRelay(t)
	h := newHarness(t, apitest.Options{SMTPRelay: relay.Addr})
	a, b, f := h.user("Dr A"), h.user("Dr B"), h.user("House Supervisor", "nurse")
	rule(a, contact(a, "email", "dr.a@hospital.test", ""), 2)
	rule(b, contact(b, "email", "dr.b@hospital.test", ""), 0)
	svc := h.service("Cardiology", 1, f, step{2, []any{userT(a)}}, step{2, []any{userT(b)}})
	p := h.page(svc, "routine", "chest pain Zorblax")

	h.waitNotified(p, a)
	if r := action(a, p, "acknowledge", nil); r.Status != 200 || r.JSON["status"] != "acknowledged" {
		t.Fatalf("acknowledge: %d %s", r.Status, r.Body)
	}
	if due := h.noteTime(p, a, "email", 0, 0, "due_at"); !h.acknowledgedAt(p).Before(due) {
		t.Skipf("the machine was too slow: the acknowledgement came after the next step was due")
	}
	h.expect(p, sent("Dr A", "in_app", 0, 0), note{"Dr A", "email", 0, 0, "cancelled"})
	h.settle() // past every delay: the email's job ran and found it cancelled; the step job was cancelled
	if msgs := relay.Messages(); len(msgs) != 0 {
		t.Errorf("relay received %d messages", len(msgs))
	}
	if st := h.pageRow(p); st.Status != "acknowledged" || st.Step != 0 {
		t.Errorf("page %+v", st)
	}
	if n := h.count(`SELECT count(*) FROM river_job WHERE kind = 'escalation.step' AND state = 'cancelled'`); n != 1 {
		t.Errorf("%d cancelled step jobs, want the pending one", n)
	}
}

// (e) A step whose schedule has nobody on call is skipped at once: the next
// step fires without waiting out the empty step's hour, the timeline names
// the schedule, and the fallback is alarmed (step -1).
func TestScenarioEmptyStepSkipped(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	b, f := h.user("Dr B"), h.user("House Supervisor", "nurse")
	sched := h.admin.Must(201, "POST", "/api/v1/schedules", map[string]any{"name": "Night float (vacant)", "time_zone": "America/Chicago"})
	svc := h.service("Cardiology", 0, f, step{3600, []any{schedT(sched["id"].(string))}}, step{3600, []any{userT(b)}})
	p := h.page(svc, "urgent", "chest pain Zorblax")

	// Within the 20 s cap, not after the empty step's 3600 s.
	h.expect(p, sent("House Supervisor", "in_app", 0, -1), sent("Dr B", "in_app", 0, 1))
	tl := h.timeline(p)
	var named bool
	for _, e := range tl {
		if e.Kind == "no_one_on_call" && e.Step != nil && *e.Step == 0 && strings.Contains(e.Detail, "Night float (vacant)") {
			named = true
		}
	}
	if !named {
		t.Errorf("no no_one_on_call entry naming the schedule: %+v", tl)
	}
	want := []string{"created", "step@0.0", "no_one_on_call@0.0", "fallback", "step@0.1"}
	if got := kinds(tl); !slices.Equal(got, want) || ofKind(tl, "notified") != 2 {
		t.Errorf("timeline %v with %d notified, want %v and 2", got, ofKind(tl, "notified"), want)
	}
	if st := h.pageRow(p); st.Status != "open" || st.Step != 1 {
		t.Errorf("page %+v, want open at step 1", st)
	}
	h.settle()
}

// (e2) Every step vacant: the page is sent, steps it reaches nobody with are
// skipped at once, and the fallback, alarmed by each of them and by the
// end of the chain within the page's first transaction, is notified once.
func TestScenarioEveryStepVacant(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	f := h.user("House Supervisor", "nurse")
	sched := h.admin.Must(201, "POST", "/api/v1/schedules", map[string]any{"name": "Night float (vacant)", "time_zone": "America/Chicago"})
	vacant := step{3600, []any{schedT(sched["id"].(string))}}
	for _, c := range []struct {
		name    string
		steps   []step
		patient bool
		want    []string
	}{
		{"two steps, about a patient", []step{vacant, vacant}, true,
			[]string{"created", "step@0.0", "no_one_on_call@0.0", "fallback", "step@0.1", "no_one_on_call@0.1", "unanswered"}},
		{"one step, about no patient", []step{vacant}, false,
			[]string{"created", "step@0.0", "no_one_on_call@0.0", "fallback", "unanswered"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			svc := h.service("Cardiology "+c.name, 0, f, c.steps...)
			body := map[string]any{"service_id": svc, "priority": "stat", "summary": "chest pain"}
			if c.patient {
				body["patient_ref"] = "Patient/mrn-4471"
			}
			p := uuid.MustParse(h.nurse.Must(201, "POST", "/api/v1/pages", body)["id"].(string))
			h.expect(p, sent("House Supervisor", "in_app", 0, -1))
			if st := h.pageRow(p); st.Status != "unanswered" {
				t.Errorf("page %+v, want unanswered", st)
			}
			if got := kinds(h.timeline(p)); !slices.Equal(got, c.want) {
				t.Errorf("timeline %v, want %v", got, c.want)
			}
			// Within the page's own transaction: its first step did not
			// fail over to the escalation queue.
			if n := h.stepJobs(p, 0, 0); n != 0 {
				t.Errorf("%d jobs for step 0: the first step failed in the page's transaction", n)
			}
		})
	}
	h.settle()
}

// (f) The chain runs twice (repeat 1), then the page is unanswered and the
// fallback alarmed; acknowledging afterwards still works.
func TestScenarioChainExhausted(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b, f := h.user("Dr A"), h.user("Dr B"), h.user("House Supervisor", "nurse")
	svc := h.service("Cardiology", 1, f, step{1, []any{userT(a)}}, step{1, []any{userT(b)}})
	p := h.page(svc, "urgent", "chest pain Zorblax")

	h.expect(p, sent("Dr A", "in_app", 0, 0), sent("Dr B", "in_app", 0, 1),
		sent("Dr A", "in_app", 1, 0), sent("Dr B", "in_app", 1, 1),
		sent("House Supervisor", "in_app", 1, -1))
	if st := h.pageRow(p); st.Status != "unanswered" || st.Round != 1 {
		t.Errorf("page %+v, want unanswered in round 1", st)
	}
	got := kinds(h.timeline(p))
	for _, k := range []string{"repeated", "unanswered", "fallback"} {
		if !slices.Contains(got, k) {
			t.Errorf("timeline %v lacks %s", got, k)
		}
	}
	h.settle()

	r := action(b, p, "acknowledge", nil)
	if r.Status != 200 || r.JSON["status"] != "acknowledged" || r.JSON["acknowledged_by"] != b.User.ID.String() {
		t.Fatalf("late acknowledge: %d %s", r.Status, r.Body)
	}
	h.settle()
}

// One step reaching several people at once notifies each exactly once, at
// once: their in-app deliveries run concurrently and must not deadlock on
// the page's event publication (they did; see DeliverWorker.Work).
func TestScenarioStepReachesMany(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	var targets []any
	var want []note
	for i := range 6 {
		c := h.user(fmt.Sprintf("Dr %c", 'A'+i))
		targets = append(targets, userT(c))
		want = append(want, sent(c.User.Name, "in_app", 0, 0))
	}
	svc := h.service("Rapid Response", 0, nil, step{3600, targets})
	for range 3 {
		p := h.page(svc, "stat", "rapid response Zorblax")
		h.expect(p, want...)
	}
	h.settle() // fails on any job error, deadlocks included
}

// (g) Two people pressing escalate at once, having both seen step 0,
// escalate once.
func TestScenarioConcurrentEscalate(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	x, a := h.user("Dr X"), h.user("Dr A")
	svc := h.service("Cardiology", 0, nil, step{3600, []any{userT(x)}}, step{3600, []any{userT(a)}}, step{3600, []any{userT(x)}})
	for i := range 5 {
		p := h.page(svc, "urgent", fmt.Sprintf("chest pain Zorblax %d", i))
		h.expect(p, sent("Dr X", "in_app", 0, 0))

		var wg sync.WaitGroup
		start := make(chan struct{})
		statuses := make([]int, 3)
		errs := make([]error, 3)
		for j, c := range []*apitest.Client{h.nurse, x, h.nurse} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				statuses[j], errs[j] = rawPost(c, "/api/v1/pages/"+p.String()+"/escalate", `{"from_round":0,"from_step":0}`)
			}()
		}
		close(start)
		wg.Wait()
		for j := range statuses {
			if errs[j] != nil || statuses[j] != 200 {
				t.Fatalf("escalate %d: %d %v", j, statuses[j], errs[j])
			}
		}
		h.expect(p, sent("Dr X", "in_app", 0, 0), sent("Dr A", "in_app", 0, 1))
		if n := h.count(`SELECT count(*) FROM page_events WHERE page_id = $1 AND kind = 'escalated'`, p); n != 1 {
			t.Errorf("page %d: %d escalated entries, want 1", i, n)
		}
		if n := h.count(`SELECT count(*) FROM page_events WHERE page_id = $1 AND kind = 'step' AND step = 1`, p); n != 1 {
			t.Errorf("page %d: step 1 fired %d times", i, n)
		}
		if st := h.pageRow(p); st.Step != 1 {
			t.Errorf("page %d at step %d, want 1", i, st.Step)
		}
	}
	h.settle()
}

// (h) Stat and asap pages use every contact method at once, whatever the
// rules; routine ones follow the rules.
func TestScenarioUrgentUsesEveryMethod(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		priority string
		want     func(a string) []note
	}{
		{"stat", func(a string) []note {
			return []note{sent(a, "in_app", 0, 0), {a, "email", 0, 0, "delivered"}, {a, "webhook", 0, 0, "delivered"}}
		}},
		{"asap", func(a string) []note {
			return []note{sent(a, "in_app", 0, 0), {a, "email", 0, 0, "delivered"}, {a, "webhook", 0, 0, "delivered"}}
		}},
		// The email rule waits 10 minutes; the webhook has no rule.
		{"routine", func(a string) []note { return []note{sent(a, "in_app", 0, 0), {a, "email", 0, 0, "queued"}} }},
	} {
		t.Run(tc.priority, func(t *testing.T) {
			t.Parallel()
			relay := smtptest.StartRelay(t)
			hook := startWebhook(t, 200)
			h := newHarness(t, apitest.Options{SMTPRelay: relay.Addr})
			a := h.user("Dr A")
			rule(a, contact(a, "email", "dr.a@hospital.test", ""), 600)
			contact(a, "webhook", hook.URL, hookSecret)
			contact(a, "in_app", "", "")
			svc := h.service("Cardiology", 0, nil, step{3600, []any{userT(a)}})
			p := h.page(svc, tc.priority, "chest pain Zorblax")

			want := tc.want("Dr A")
			h.expect(p, want...)
			h.settle()
			if len(want) == 3 {
				inApp := h.noteTime(p, a, "in_app", 0, 0, "due_at")
				for _, ch := range []string{"email", "webhook"} {
					if due := h.noteTime(p, a, ch, 0, 0, "due_at"); !due.Equal(inApp) {
						t.Errorf("%s due %s after in-app, want at once", ch, due.Sub(inApp))
					}
				}
				if msgs := relay.Messages(); len(msgs) != 1 {
					t.Errorf("relay received %d messages, want 1", len(msgs))
				} else {
					checkMail(t, msgs, phi...)
				}
				calls := hook.received()
				if len(calls) != 1 {
					t.Errorf("gateway received %d calls, want 1", len(calls))
				}
				checkHook(t, calls, p, phi...)
				return
			}
			if n := len(relay.Messages()) + len(hook.received()); n != 0 {
				t.Errorf("%d emails and webhooks sent for a routine page", n)
			}
		})
	}
}

// (i) A repeated POST with the same dedup key and service is the same page
// (200), also when requests race; once the page is resolved the key makes a
// new page.
func TestScenarioDedupKey(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a := h.user("Dr A")
	svc := h.service("Cardiology", 0, nil, step{3600, []any{userT(a)}})
	other := h.service("Neurology", 0, nil, step{3600, []any{userT(a)}})
	body := func(service string) map[string]any {
		return map[string]any{"service_id": service, "priority": "urgent", "summary": "chest pain Zorblax", "dedup_key": "bed-4-chest-pain"}
	}

	first := h.nurse.Must(201, "POST", "/api/v1/pages", body(svc))
	again := h.nurse.Must(200, "POST", "/api/v1/pages", body(svc))
	if again["id"] != first["id"] {
		t.Fatalf("the repeat made page %v, want %v", again["id"], first["id"])
	}
	p1 := uuid.MustParse(first["id"].(string))
	elsewhere := h.nurse.Must(201, "POST", "/api/v1/pages", body(other))
	h.expect(p1, sent("Dr A", "in_app", 0, 0))
	h.expect(uuid.MustParse(elsewhere["id"].(string)), sent("Dr A", "in_app", 0, 0))

	h.nurse.Must(200, "POST", "/api/v1/pages/"+p1.String()+"/resolve", nil)
	third := h.nurse.Must(201, "POST", "/api/v1/pages", body(svc))
	if third["id"] == first["id"] {
		t.Fatal("the key of a resolved page returned the resolved page")
	}
	h.expect(uuid.MustParse(third["id"].(string)), sent("Dr A", "in_app", 0, 0))

	// Eight nurses sending the same page at the same moment make one page.
	key := `{"service_id":"` + svc + `","priority":"stat","summary":"code blue Zorblax","dedup_key":"code-blue-7"}`
	var wg sync.WaitGroup
	statuses := make([]int, 8)
	errs := make([]error, 8)
	start := make(chan struct{})
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			statuses[i], errs[i] = rawPost(h.nurse, "/api/v1/pages", key)
		}()
	}
	close(start)
	wg.Wait()
	created := 0
	for i, st := range statuses {
		if errs[i] != nil || (st != 200 && st != 201) {
			t.Fatalf("racing POST %d: %d %v", i, st, errs[i])
		}
		if st == 201 {
			created++
		}
	}
	if created != 1 {
		t.Errorf("%d of the racing POSTs created a page, want 1", created)
	}
	var p4 uuid.UUID
	if err := h.in.DB.Pool.QueryRow(context.Background(), `SELECT id FROM pages WHERE dedup_key = 'code-blue-7'`).Scan(&p4); err != nil {
		t.Fatalf("the raced page: %v", err)
	}
	h.expect(p4, sent("Dr A", "in_app", 0, 0))
	if n := h.count(`SELECT count(*) FROM pages`); n != 4 {
		t.Errorf("%d pages, want 4", n)
	}
	h.settle()
}

// (j) A page straight to a person notifies them (step -2) and nobody else.
func TestScenarioDirectPage(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	d := h.user("Dr Direct")
	h.user("Dr Bystander")
	r := h.nurse.Must(201, "POST", "/api/v1/pages", map[string]any{"user_id": d.User.ID, "priority": "urgent", "summary": "call bed 12 Zorblax"})
	p := uuid.MustParse(r["id"].(string))
	if r["service_id"] != nil || r["user_id"] != d.User.ID.String() {
		t.Errorf("page %v", r)
	}
	h.expect(p, sent("Dr Direct", "in_app", 0, -2))
	if st := h.pageRow(p); st.Status != "open" || st.Step != 0 {
		t.Errorf("page %+v, want open at step 0", st)
	}
	if r := action(d, p, "acknowledge", nil); r.Status != 200 || r.JSON["status"] != "acknowledged" {
		t.Fatalf("acknowledge: %d %s", r.Status, r.Body)
	}
	h.settle()
	if n := h.count(`SELECT count(*) FROM river_job WHERE kind = 'escalation.step' AND state = 'cancelled'`); n != 1 {
		t.Errorf("%d cancelled step jobs, want the unanswered timeout", n)
	}
}

// (j) A deactivated account on call is not paged: of a schedule's two
// people on call, only the active one is notified; a schedule whose only
// person on call is deactivated reaches nobody, is named on the timeline
// and alarms the fallback, as an empty schedule does.
func TestScenarioDeactivatedOnCall(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, c, f := h.user("Dr A"), h.user("Dr C"), h.user("House Supervisor", "nurse")
	schedule := func(name string, people ...*apitest.Client) string {
		s := h.admin.Must(201, "POST", "/api/v1/schedules", map[string]any{"name": name, "time_zone": "America/Chicago"})
		id := s["id"].(string)
		for i, p := range people {
			h.admin.Must(201, "POST", "/api/v1/schedules/"+id+"/rotations", map[string]any{
				"name": fmt.Sprintf("Rotation %d", i), "participants": []any{p.User.ID}, "shift_length": 1, "shift_unit": "weeks",
				"start": time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)})
		}
		return id
	}
	both := schedule("Cardiology call", a, c)
	onlyC := schedule("Neurology call", c)
	h.admin.Must(200, "PATCH", "/api/v1/users/"+c.User.ID.String(), map[string]any{"active": false})

	p := h.page(h.service("Cardiology", 0, f, step{3600, []any{schedT(both)}}), "urgent", "chest pain Zorblax")
	h.expect(p, sent("Dr A", "in_app", 0, 0))

	q := h.page(h.service("Neurology", 0, f, step{3600, []any{schedT(onlyC)}}), "urgent", "weakness Zorblax")
	h.expect(q, sent("House Supervisor", "in_app", 0, -1))
	named := false
	for _, e := range h.timeline(q) {
		named = named || (e.Kind == "no_one_on_call" && strings.Contains(e.Detail, "Neurology call"))
	}
	if !named {
		t.Errorf("no no_one_on_call entry naming the schedule: %+v", h.timeline(q))
	}
	h.settle()
}
