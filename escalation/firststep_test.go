package escalation_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callroom/callroom/escalation"
	"github.com/callroom/callroom/internal/apitest"
)

// stepJobs counts the escalation.step jobs River holds for (page, round, step).
func (h *harness) stepJobs(page uuid.UUID, round, step int) int {
	h.t.Helper()
	return h.count(`SELECT count(*) FROM river_job WHERE kind = 'escalation.step'
		AND args->>'page_id' = $1 AND (args->>'round')::int = $2 AND (args->>'step')::int = $3`, page.String(), round, step)
}

// The first step fires in the transaction that sends the page: when the
// 201 arrives the physician's in-app notification is already sent, with no
// job for step 0, and the job for step 1 is already waiting.
func TestFirstStepFiresWithThePage(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b := h.user("Dr A"), h.user("Dr B")
	svc := h.service("Cardiology", 0, nil, step{60, []any{userT(a)}}, step{60, []any{userT(b)}})
	p := h.page(svc, "urgent", "chest pain Zorblax")

	// No waiting: the notification exists when POST returns.
	if n := h.count(`SELECT count(*) FROM notifications WHERE page_id = $1 AND user_id = $2 AND status = 'sent'`, p, a.User.ID); n != 1 {
		t.Fatalf("Dr A's sent notifications when the 201 arrived: %d, want 1", n)
	}
	tl := h.timeline(p)
	if got := kinds(tl); strings.Join(got, ",") != "created,step@0.0" || ofKind(tl, "notified") != 1 {
		t.Errorf("timeline %v with %d notified, want created, step@0.0 and one notified", got, ofKind(tl, "notified"))
	}
	if n := h.stepJobs(p, 0, 0); n != 0 {
		t.Errorf("%d jobs for step 0, want none (fired inline)", n)
	}
	if n := h.stepJobs(p, 0, 1); n != 1 {
		t.Errorf("%d jobs for step 1, want 1", n)
	}
	h.expect(p, sent("Dr A", "in_app", 0, 0))
}

// Should the first step fail inside the request, the page is not lost nor
// refused: it is sent again without it, and the escalation queue fires the
// step, as it does every later step.
func TestFirstStepFallsBackToTheQueue(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a := h.user("Dr A")
	svc := h.service("Cardiology", 0, nil, step{60, []any{userT(a)}})
	escalation.FailFirstStep(h.in.Server.Pages, errors.New("injected fault"))
	p := h.page(svc, "stat", "chest pain Zorblax")

	h.waitNotified(p, a)
	if n := h.stepJobs(p, 0, 0); n != 1 {
		t.Errorf("%d jobs for step 0, want 1 (the fallback)", n)
	}
	if n := h.count(`SELECT count(*) FROM pages WHERE created_by = $1`, h.nurse.User.ID); n != 1 {
		t.Errorf("%d pages, want 1: the failed attempt must leave nothing behind", n)
	}
	if n := h.count(`SELECT count(*) FROM audit_events WHERE action = 'page.create' AND object_id = $1`, p.String()); n != 1 {
		t.Errorf("%d page.create audit events, want 1", n)
	}
	if !strings.Contains(h.in.LogText(), "sending it through the escalation queue") {
		t.Error("the fallback was not logged")
	}
	h.expect(p, sent("Dr A", "in_app", 0, 0))
}

// Sending a page tells the sender and whoever the first step reached, in
// the same transaction: page.updated (open) to both, page.notify with the
// notification to the recipient. A page about no patient takes a shorter
// path (its events are known without reading it back); both paths must
// announce the same.
func TestSendingAPageAnnouncesIt(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	for _, c := range []struct {
		name    string
		patient string
	}{{"about a patient", "Patient/mrn-4471"}, {"about no patient", ""}} {
		t.Run(c.name, func(t *testing.T) {
			doc := h.user("Dr " + c.name)
			svc := h.service("Cardiology "+c.name, 0, nil, step{60, []any{userT(doc)}})
			body := map[string]any{"service_id": svc, "priority": "stat", "summary": "chest pain"}
			if c.patient != "" {
				body["patient_ref"] = c.patient
			}
			p := uuid.MustParse(h.nurse.Must(201, "POST", "/api/v1/pages", body)["id"].(string))
			h.expect(p, sent(doc.User.Name, "in_app", 0, 0))
			var notification string
			if err := h.in.DB.Pool.QueryRow(context.Background(), `SELECT id::text FROM notifications WHERE page_id = $1`, p).
				Scan(&notification); err != nil {
				t.Fatal(err)
			}
			for _, w := range []struct {
				who  *apitest.Client
				want string
			}{
				{h.nurse, fmt.Sprintf(`page.updated {"status": "open", "page_id": %q, "priority": "stat"}`, p)},
				{doc, fmt.Sprintf(`page.updated {"status": "open", "page_id": %q, "priority": "stat"}`+
					`|page.notify {"page_id": %q, "priority": "stat", "notification_id": %q}`, p, p, notification)},
			} {
				rows, err := h.in.DB.Pool.Query(context.Background(), `SELECT type || ' ' || data::text FROM user_events
					WHERE user_id = $1 AND data->>'page_id' = $2 ORDER BY seq`, w.who.User.ID, p.String())
				if err != nil {
					t.Fatal(err)
				}
				got, err := pgx.CollectRows(rows, pgx.RowTo[string])
				if err != nil {
					t.Fatal(err)
				}
				if strings.Join(got, "|") != w.want {
					t.Errorf("%s's events about the page:\n%s\nwant\n%s", w.who.User.Name, strings.Join(got, "|"), w.want)
				}
			}
		})
	}
}
