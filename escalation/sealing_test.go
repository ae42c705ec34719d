package escalation_test

import (
	"context"
	"strings"
	"testing"

	"github.com/callroom/callroom/internal/apitest"
)

// TestPageTextIsSealedAtRest: what a nurse writes in a page is PHI; no table
// holds it in the clear, and the API still shows it.
func TestPageTextIsSealedAtRest(t *testing.T) {
	t.Parallel()
	in := apitest.Start(t)
	nurse := in.User("Nina Nurse", "nurse")
	doc := in.User("Dr A", "physician")
	const summary, body = "Quixotic-summary Mr Pemberton bed 12", "Quixotic-body troponin rising"
	p := nurse.Must(201, "POST", "/api/v1/pages", map[string]any{"user_id": doc.User.ID, "priority": "urgent",
		"summary": summary, "body": body, "patient_ref": "Patient/quixotic-1"})
	if p["summary"] != summary || p["body"] != body {
		t.Fatalf("create answers %v / %v", p["summary"], p["body"])
	}
	got := nurse.Must(200, "GET", "/api/v1/pages/"+p["id"].(string), nil)
	if got["summary"] != summary || got["body"] != body {
		t.Fatalf("read answers %v / %v", got["summary"], got["body"])
	}
	list := nurse.Must(200, "GET", "/api/v1/pages", nil)["pages"].([]any)
	if list[0].(map[string]any)["summary"] != summary {
		t.Fatalf("list answers %v", list[0])
	}
	// Every text and bytea column of every table, as text.
	rows, err := in.DB.Pool.Query(context.Background(), `SELECT table_name, column_name FROM information_schema.columns
		WHERE table_schema = 'public' AND data_type IN ('text', 'bytea', 'jsonb', 'character varying')`)
	if err != nil {
		t.Fatal(err)
	}
	type col struct{ table, column string }
	var cols []col
	for rows.Next() {
		var c col
		rows.Scan(&c.table, &c.column)
		cols = append(cols, c)
	}
	for _, c := range cols {
		// Compare bytes: a bytea cast to text is hex and would hide plain text.
		var n int
		err := in.DB.Pool.QueryRow(context.Background(),
			`SELECT count(*) FROM "`+c.table+`" WHERE position(convert_to('Quixotic', 'UTF8') in convert_to("`+c.column+`"::text, 'UTF8')) > 0
			   OR (pg_typeof("`+c.column+`") = 'bytea'::regtype AND position(convert_to('Quixotic', 'UTF8') in "`+c.column+`"::text::bytea) > 0)`).Scan(&n)
		if err != nil {
			t.Fatalf("%s.%s: %v", c.table, c.column, err)
		}
		if n > 0 {
			t.Errorf("%s.%s holds the page text in the clear", c.table, c.column)
		}
	}
	if strings.Contains(in.LogText(), "Quixotic") || strings.Contains(in.LogText(), "Pemberton") {
		t.Error("the page text is in the log")
	}
}
