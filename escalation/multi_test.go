package escalation_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callroom/callroom/internal/apitest"
)

// Two instances on one database share the work: 50 pages sent through
// both, each with a step due 1 s after the first, and every (page, step)
// fires exactly once, with exactly one notification.
func TestTwoInstancesFireEachStepOnce(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	other := apitest.Start(t, apitest.Options{DB: h.in.DB})
	a, b := h.user("Dr A"), h.user("Dr B")
	svc := h.service("Cardiology", 0, nil, step{1, []any{userT(a)}}, step{3600, []any{userT(b)}})
	// The same nurse, through the other instance.
	nurse2 := &apitest.Client{T: t, Base: other.URL, Token: h.nurse.Token, User: h.nurse.User}

	const n = 50
	ids := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		c := h.nurse
		if i%2 == 1 {
			c = nurse2
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ids[i], errs[i] = rawCreate(c, fmt.Sprintf(`{"service_id":%q,"priority":"urgent","summary":"bed %d Zorblax"}`, svc, i))
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("page %d: %v", i, err)
		}
	}
	for _, id := range ids {
		h.expect(uuid.MustParse(id), sent("Dr A", "in_app", 0, 0), sent("Dr B", "in_app", 0, 1))
	}
	h.settle()

	rows, _ := h.in.DB.Pool.Query(context.Background(), `SELECT page_id::text || ' round ' || round || ' step ' || step || ': ' || count(*)
		FROM page_events WHERE kind = 'step' GROUP BY page_id, round, step HAVING count(*) <> 1`)
	dups, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dups {
		t.Errorf("step fired more than once: %s", d)
	}
	if got := h.count(`SELECT count(*) FROM page_events WHERE kind = 'step'`); got != 2*n {
		t.Errorf("%d steps fired, want %d", got, 2*n)
	}
	if got := h.count(`SELECT count(*) FROM notifications`); got != 2*n {
		t.Errorf("%d notifications, want %d", got, 2*n)
	}
	// Both instances worked on the escalation queue.
	if got := h.count(`SELECT count(DISTINCT attempted_by[1]) FROM river_job WHERE kind LIKE 'escalation.%'`); got != 2 {
		t.Logf("jobs were worked by %d River clients", got)
	}
}

// rawCreate POSTs a page from any goroutine and returns its id.
func rawCreate(c *apitest.Client, body string) (string, error) {
	req, err := newJSONRequest(c, "POST", "/api/v1/pages", body)
	if err != nil {
		return "", err
	}
	var out struct {
		ID string `json:"id"`
	}
	status, err := doJSON(req, &out)
	if err != nil {
		return "", err
	}
	if status != 201 {
		return "", fmt.Errorf("status %d", status)
	}
	return out.ID, nil
}
