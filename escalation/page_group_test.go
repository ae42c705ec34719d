package escalation_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callroom/callroom/escalation"
	"github.com/callroom/callroom/internal/apitest"
)

// sendAtOnce sends each body as a page from its own goroutine, all at once,
// and returns each answer's status and page id (uuid.Nil unless 201).
func (h *harness) sendAtOnce(bodies []map[string]any) ([]int, []uuid.UUID) {
	h.t.Helper()
	status, ids := make([]int, len(bodies)), make([]uuid.UUID, len(bodies))
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, b := range bodies {
		wg.Go(func() {
			<-start
			r := h.nurse.Do("POST", "/api/v1/pages", b)
			status[i] = r.Status
			if r.Status == http.StatusCreated {
				ids[i] = uuid.MustParse(r.JSON["id"].(string))
			}
		})
	}
	close(start)
	wg.Wait()
	return status, ids
}

// Pages sent at once are committed in groups, and each is what it would be
// on its own: its notifications, timeline, audit event, next step's job and
// events. Pages whose first step resolves a schedule leave their group and
// are sent alone; a page to a deactivated person is refused as ever.
func TestPagesSentAtOnceAreGrouped(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	escalation.GroupPagesFrom(h.in.Server.Pages, 1)
	a, b, c, gone := h.user("Dr A"), h.user("Dr B"), h.user("Dr C"), h.user("Dr Gone")
	rule(a, contact(a, "email", "a@example.org", ""), 0) // stat: an email at once too
	direct := h.service("Direct", 0, nil, step{600, []any{userT(a)}})
	sched := h.admin.Must(201, "POST", "/api/v1/schedules", map[string]any{"name": "Nights", "time_zone": "UTC"})
	h.admin.Must(201, "POST", "/api/v1/schedules/"+sched["id"].(string)+"/rotations", map[string]any{"name": "Nights",
		"participants": []any{b.User.ID}, "shift_length": 1, "shift_unit": "weeks", "start": time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)})
	onCall := h.service("On call", 0, nil, step{600, []any{schedT(sched["id"].(string))}})
	h.admin.Must(200, "PATCH", "/api/v1/users/"+gone.User.ID.String(), map[string]any{"active": false})

	var bodies []map[string]any
	for i := range 10 {
		bodies = append(bodies,
			map[string]any{"service_id": direct, "priority": "stat", "summary": fmt.Sprint("direct ", i)},
			map[string]any{"service_id": onCall, "priority": "urgent", "summary": fmt.Sprint("on call ", i)},
			map[string]any{"user_id": c.User.ID, "priority": "asap", "summary": fmt.Sprint("to C ", i)})
	}
	bodies = append(bodies, map[string]any{"user_id": gone.User.ID, "priority": "stat", "summary": "to someone gone"})
	status, ids := h.sendAtOnce(bodies)
	if status[len(status)-1] != 422 {
		t.Errorf("a page to a deactivated user: %d, want 422", status[len(status)-1])
	}
	for i, id := range ids[:len(ids)-1] {
		if status[i] != 201 {
			t.Fatalf("page %v: %d", bodies[i], status[i])
		}
		want := map[int]note{0: sent("Dr A", "in_app", 0, 0), 1: sent("Dr B", "in_app", 0, 0), 2: sent("Dr C", "in_app", 0, -2)}[i%3]
		if i%3 == 0 { // no relay configured: the email fails, as it would on its own
			h.expect(id, want, note{"Dr A", "email", 0, 0, "failed"})
		} else {
			h.expect(id, want)
		}
		if tl := kinds(h.timeline(id)); len(tl) < 2 || tl[0] != "created" {
			t.Errorf("page %d's timeline: %v", i, tl)
		}
		if n := h.count(`SELECT count(*) FROM audit_events WHERE action = 'page.create' AND object_id = $1`, id.String()); n != 1 {
			t.Errorf("page %d: %d page.create audit events, want 1", i, n)
		}
		if n := h.count(`SELECT count(*) FROM pages p JOIN river_job j ON j.id = p.next_job_id WHERE p.id = $1`, id); n != 1 {
			t.Errorf("page %d has no job for what comes next", i)
		}
	}
	if n := escalation.PagesSentInGroups(h.in.Server.Pages); n == 0 {
		t.Error("no page was sent in a group")
	} else {
		t.Logf("%d of %d pages sent in groups", n, len(ids)-1)
	}
	if n := h.count(`SELECT count(*) FROM pages`); n != len(ids)-1 {
		t.Errorf("%d pages, want %d", n, len(ids)-1)
	}
	// Every stream is whole: each recipient's events numbered 1, 2, ...,
	// one page.notify per page that reached them; the nurse's page.updated,
	// one per page sent and one per email that failed.
	for _, w := range []struct {
		who    *apitest.Client
		typ    string
		events int
	}{{a, "page.notify", 10}, {b, "page.notify", 10}, {c, "page.notify", 10}, {h.nurse, "page.updated", 40}} {
		rows, _ := h.in.DB.Pool.Query(context.Background(), `SELECT seq, type FROM user_events WHERE user_id = $1 ORDER BY seq`, w.who.User.ID)
		type ev struct {
			Seq  int64
			Type string
		}
		evs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[ev])
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for i, e := range evs {
			if e.Seq != int64(i+1) {
				t.Errorf("%s's events: seq %d at %d", w.who.User.Name, e.Seq, i+1)
				break
			}
			if e.Type == w.typ {
				n++
			}
		}
		if n != w.events {
			t.Errorf("%s: %d %s events, want %d", w.who.User.Name, n, w.typ, w.events)
		}
	}
	h.settle()
}

// A page that fails in its group's transaction (here the database refuses
// it) costs the others nothing: the group rolls back, each page is sent on
// its own, and each is written exactly once.
func TestAPageFailingInItsGroup(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	escalation.GroupPagesFrom(h.in.Server.Pages, 1)
	a := h.user("Dr A")
	svc := h.service("Direct", 0, nil, step{600, []any{userT(a)}})
	ctx := context.Background()
	if _, err := h.in.DB.Pool.Exec(ctx, `CREATE FUNCTION refuse_routine() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN IF NEW.priority = 'routine' THEN RAISE EXCEPTION 'injected fault'; END IF; RETURN NEW; END $$;
		CREATE TRIGGER refuse_routine BEFORE INSERT ON pages FOR EACH ROW EXECUTE FUNCTION refuse_routine()`); err != nil {
		t.Fatal(err)
	}
	var bodies []map[string]any
	for i := range 20 {
		priority := "urgent"
		if i%10 == 5 {
			priority = "routine"
		}
		bodies = append(bodies, map[string]any{"service_id": svc, "priority": priority, "summary": fmt.Sprint("page ", i)})
	}
	status, ids := h.sendAtOnce(bodies)
	for i, id := range ids {
		if bodies[i]["priority"] == "routine" {
			if status[i] != 500 {
				t.Errorf("a page the database refuses: %d, want 500", status[i])
			}
			continue
		}
		if status[i] != 201 {
			t.Fatalf("page %d: %d", i, status[i])
		}
		h.expect(id, sent("Dr A", "in_app", 0, 0))
	}
	t.Logf("%d pages sent in groups", escalation.PagesSentInGroups(h.in.Server.Pages))
	if log := h.in.LogText(); !strings.Contains(log, "a group of pages could not commit") || strings.Contains(log, "page 5") {
		t.Error("a group rolled back was not logged (or the log carries a page's text)")
	}
	if n := h.count(`SELECT count(*) FROM pages`); n != 18 {
		t.Errorf("%d pages, want 18", n)
	}
	if n := h.count(`SELECT count(*) FROM audit_events WHERE action = 'page.create'`); n != 18 {
		t.Errorf("%d page.create audit events, want 18", n)
	}
	if n := h.count(`SELECT count(*) FROM user_events WHERE user_id = $1 AND type = 'page.notify'`, a.User.ID); n != 18 {
		t.Errorf("%d page.notify events, want 18", n)
	}
	h.settle()
}

// What sending a page answers is the page as stored: the same as reading
// it back, alone or in a group, about a patient or not.
func TestSentPageIsThePageStored(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a := h.user("Dr A")
	svc := h.service("Cardiology", 0, nil, step{600, []any{userT(a)}})
	for _, grouped := range []bool{false, true} {
		if grouped {
			escalation.GroupPagesFrom(h.in.Server.Pages, 1)
		}
		for _, patient := range []string{"", "Patient/mrn-4471"} {
			body := map[string]any{"service_id": svc, "priority": "urgent", "summary": "chest pain"}
			if patient != "" {
				body["patient_ref"] = patient
			}
			answer := h.nurse.Must(201, "POST", "/api/v1/pages", body)
			stored := h.nurse.Must(200, "GET", "/api/v1/pages/"+answer["id"].(string), nil)
			for k, v := range answer {
				if fmt.Sprint(stored[k]) != fmt.Sprint(v) {
					t.Errorf("grouped %v, patient %q: %s sent %v, stored %v", grouped, patient, k, v, stored[k])
				}
			}
			if len(answer) < 10 {
				t.Errorf("the answer has %d fields: %v", len(answer), answer)
			}
			h.expect(uuid.MustParse(answer["id"].(string)), sent("Dr A", "in_app", 0, 0))
		}
	}
	h.settle()
}
