package main

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/internal/pg"
	"github.com/callroom/callroom/internal/pgtest"
)

// TestAuditVerify runs 'callroom audit verify' on an intact trail, then on
// one where a row was altered directly in PostgreSQL (triggers disabled, as
// a superuser could), and expects a failure naming the row.
func TestAuditVerify(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	for _, action := range []string{"thread.read", "message.list", "page.read"} {
		if err := audit.Record(ctx, db.Pool, audit.Actor{ClientAddr: "192.0.2.1"}, audit.Entry{Action: action, PatientRef: "Patient/9"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := audit.Seal(ctx, db.Pool); err != nil {
		t.Fatal(err)
	}
	verify := func() (string, error) {
		var out, errb bytes.Buffer
		err := run(ctx, []string{"audit", "verify", "--database-url", db.URL}, nil, &out, &errb)
		return out.String(), err
	}
	out, err := verify()
	if err != nil || !strings.Contains(out, "intact: 3 rows verified") || !strings.Contains(out, "chain head: seq 3 sha256 ") {
		t.Fatalf("intact trail: %v\n%s", err, out)
	}
	var id int64
	err = pg.InTx(ctx, db.Pool, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT id FROM audit_events WHERE seq = 2`).Scan(&id); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update;
			UPDATE audit_events SET patient_ref = 'Patient/10' WHERE seq = 2;
			ALTER TABLE audit_events ENABLE TRIGGER audit_events_no_update`)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	out, err = verify()
	want := "row " + itoa(id) + " (seq 2)"
	if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(out, "BROKEN at "+want) {
		t.Fatalf("altered trail: %v\n%s\nwant a failure naming %s", err, out, want)
	}
	var errb bytes.Buffer
	if err := run(ctx, []string{"audit", "purge", "--database-url", db.URL, "--before", "2024-01-01"}, nil, &bytes.Buffer{}, &errb); err == nil ||
		!strings.Contains(err.Error(), "6 years") {
		t.Errorf("purging recent rows: %v, want refused", err)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestAuditVerifyAnchor: someone with the owner's credentials alters a row
// and rebuilds the whole chain, so it verifies again; the head recorded
// earlier (--anchor) exposes it.
func TestAuditVerifyAnchor(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	for _, action := range []string{"thread.read", "message.list", "page.read", "thread.list"} {
		if err := audit.Record(ctx, db.Pool, audit.Actor{ClientAddr: "192.0.2.1"}, audit.Entry{Action: action, PatientRef: "Patient/9"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := audit.Seal(ctx, db.Pool); err != nil {
		t.Fatal(err)
	}
	verify := func(extra ...string) (string, error) {
		var out, errb bytes.Buffer
		err := run(ctx, append([]string{"audit", "verify", "--database-url", db.URL}, extra...), nil, &out, &errb)
		return out.String(), err
	}
	out, err := verify()
	_, anchor, ok := strings.Cut(out, "--anchor ")
	anchor = strings.TrimSpace(anchor)
	if err != nil || !ok || !strings.HasPrefix(anchor, "4:") {
		t.Fatalf("intact: %v\n%s", err, out)
	}
	if out, err := verify("--anchor", anchor); err != nil || !strings.Contains(out, "anchor seq 4 found") {
		t.Fatalf("with its own anchor: %v\n%s", err, out)
	}
	if _, err := verify("--anchor", "4:nothex"); err == nil {
		t.Error("a malformed anchor was accepted")
	}
	// A day later: two more rows; the quick run checks only those.
	for range 2 {
		if err := audit.Record(ctx, db.Pool, audit.System, audit.Entry{Action: "page.read"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := audit.Seal(ctx, db.Pool); err != nil {
		t.Fatal(err)
	}
	if out, err := verify("--anchor", anchor, "--since-anchor"); err != nil || !strings.Contains(out, "intact: 2 rows verified (seq 5..6)") {
		t.Fatalf("since the anchor: %v\n%s", err, out)
	}
	err = pg.InTx(ctx, db.Pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update;
			UPDATE audit_events SET patient_ref = 'Patient/10' WHERE seq = 2;
			UPDATE audit_events SET seq = NULL, prev_hash = NULL, hash = NULL;
			UPDATE audit_chain_head SET seq = 0, hash = '\x0000000000000000000000000000000000000000000000000000000000000000';
			ALTER TABLE audit_events ENABLE TRIGGER audit_events_no_update`)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := audit.Seal(ctx, db.Pool); err != nil {
		t.Fatal(err)
	}
	if out, err := verify(); err != nil {
		t.Fatalf("the rebuilt chain should verify on its own: %v\n%s", err, out)
	}
	if out, err := verify("--anchor", anchor); err == nil || !strings.Contains(out, "BROKEN") || !strings.Contains(err.Error(), "rebuilt") {
		t.Errorf("rebuilt chain with the old anchor: %v\n%s", err, out)
	}
	if out, err := verify("--anchor", anchor, "--since-anchor"); err == nil || !strings.Contains(out, "BROKEN") || !strings.Contains(err.Error(), "rebuilt") {
		t.Errorf("rebuilt chain, quick run from the old anchor: %v\n%s", err, out)
	}
}
