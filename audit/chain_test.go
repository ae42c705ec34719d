package audit_test

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/internal/pg"
	"github.com/callroom/callroom/internal/pgtest"
)

// record writes n events as n committed transactions.
func record(t *testing.T, db *pgtest.DB, n int, action string) {
	t.Helper()
	ctx := context.Background()
	for i := range n {
		err := pg.InTx(ctx, db.Pool, func(tx pgx.Tx) error {
			return audit.Record(ctx, tx, audit.Actor{UserID: uuid.New(), ClientAddr: "192.0.2.7"}, audit.Entry{
				Action: action, ObjectType: "thread", ObjectID: fmt.Sprint(i), PatientRef: "Patient/p" + fmt.Sprint(i%3),
				Details: map[string]any{"count": i, "reason": "ä ünïcode"}})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func seal(t *testing.T, db *pgtest.DB) int {
	t.Helper()
	n, err := audit.Seal(context.Background(), db.Pool)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestChainUnderConcurrentWriters: writers commit in any order while
// sealers run on several connections; every row ends in the chain exactly
// once, in one well-defined order, and the chain verifies.
func TestChainUnderConcurrentWriters(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() { record(t, db, 50, "test.write") })
	}
	var sealers sync.WaitGroup
	for range 2 {
		sealers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := audit.Seal(ctx, db.Pool); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	sealers.Wait()
	seal(t, db)
	rep, err := audit.Verify(ctx, db.Pool)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	db.Pool.QueryRow(ctx, `SELECT count(*) FROM audit_events`).Scan(&total) //nolint:errcheck
	if rep.Verified != total || rep.HeadSeq != total || rep.Unsealed != 0 || rep.FirstSeq != 1 || total < 200 {
		t.Errorf("report %+v, want all %d rows verified", rep, total)
	}
	if seal(t, db) != 0 {
		t.Error("a second seal sealed rows again")
	}
}

// tamper runs sql as the superuser with the append-only triggers off, as
// an attacker with database access would.
func tamper(t *testing.T, db *pgtest.DB, sql string, args ...any) {
	t.Helper()
	ctx := context.Background()
	err := pg.InTx(ctx, db.Pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update`); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, sql, args...)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return errors.New("tampering touched no row")
		}
		_, err = tx.Exec(ctx, `ALTER TABLE audit_events ENABLE TRIGGER audit_events_no_update`)
		return err
	})
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func TestVerifyNamesTheFirstRowAlteredOrRemoved(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		sql    string
		seq    int64
		id     bool // whether the break names a row that is there
		reason string
	}{
		{"content altered", `UPDATE audit_events SET action = 'thread.create' WHERE seq = 4`, 4, true, "content"},
		{"actor altered", `UPDATE audit_events SET actor_id = NULL WHERE seq = 2`, 2, true, "content"},
		{"details altered", `UPDATE audit_events SET details = details || '{"count": 99}' WHERE seq = 6`, 6, true, "content"},
		{"time altered", `UPDATE audit_events SET at = at - interval '1 hour' WHERE seq = 1`, 1, true, "content"},
		{"patient removed", `UPDATE audit_events SET patient_ref = NULL WHERE seq = 3`, 3, true, "content"},
		{"hash rewritten", `UPDATE audit_events SET hash = sha256(hash) WHERE seq = 5`, 5, true, "content"},
		{"row removed", `DELETE FROM audit_events WHERE seq = 5`, 5, false, "removed"},
		{"first row removed", `DELETE FROM audit_events WHERE seq = 1`, 1, false, "removed"},
		{"last row removed", `DELETE FROM audit_events WHERE seq = 8`, 8, false, "removed"},
		{"row removed and renumbered", `DELETE FROM audit_events WHERE seq = 3; UPDATE audit_events SET seq = -seq WHERE seq > 3; UPDATE audit_events SET seq = -seq - 1 WHERE seq < 0`, 3, true, "link"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db := pgtest.New(t)
			record(t, db, 8, "thread.read")
			if n := seal(t, db); n != 8 {
				t.Fatalf("sealed %d, want 8", n)
			}
			if _, err := audit.Verify(context.Background(), db.Pool); err != nil {
				t.Fatalf("before tampering: %v", err)
			}
			for _, q := range strings.Split(tc.sql, ";") {
				tamper(t, db, q)
			}
			rep, err := audit.Verify(context.Background(), db.Pool)
			if !errors.Is(err, audit.ErrChainBroken) || rep.Break == nil {
				t.Fatalf("after tampering: %v, want the chain broken", err)
			}
			if rep.Break.Seq != tc.seq || (rep.Break.ID != 0) != tc.id || !strings.Contains(rep.Break.Reason, tc.reason) {
				t.Errorf("break %s, want seq %d (%s)", rep.Break, tc.seq, tc.reason)
			}
		})
	}
}

func TestSealingOnlyFillsTheChain(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	record(t, db, 2, "test.write")
	// Sealing may not change content, and a sealed row changes no more.
	for _, q := range []string{
		`UPDATE audit_events SET seq = 1, prev_hash = '\x00', hash = '\x01', action = 'forged' WHERE id = (SELECT min(id) FROM audit_events)`,
		`UPDATE audit_events SET action = 'forged'`,
	} {
		if _, err := db.Pool.Exec(ctx, q); err == nil {
			t.Errorf("%s: succeeded, want refused", q)
		}
	}
	seal(t, db)
	if _, err := db.Pool.Exec(ctx, `UPDATE audit_events SET hash = sha256(hash)`); err == nil {
		t.Error("re-hashing a sealed row succeeded")
	}
	if _, err := db.Pool.Exec(ctx, `DELETE FROM audit_chain_head`); err == nil {
		t.Error("deleting the chain head succeeded")
	}
	if _, err := db.Pool.Exec(ctx, `TRUNCATE audit_events`); err == nil || !strings.Contains(err.Error(), "append-only") {
		t.Errorf("TRUNCATE: %v, want refused as append-only", err)
	}
	if _, err := audit.Verify(ctx, db.Pool); err != nil {
		t.Error(err)
	}
}

// TestAuditRowsAreKeptSixYears: no path deletes an audit row younger than
// six years, not Purge, not a DELETE in purge mode; older rows go only as a
// prefix of the chain, which still verifies.
func TestAuditRowsAreKeptSixYears(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	_, err := db.Pool.Exec(ctx, `INSERT INTO audit_events (at, action, outcome)
		SELECT now() - make_interval(years => 7, days => g), 'old.event', 'success' FROM generate_series(3, 1, -1) g`)
	if err != nil {
		t.Fatal(err)
	}
	record(t, db, 3, "young.event")
	seal(t, db)

	if _, err := audit.Purge(ctx, db.Pool, time.Now().AddDate(-5, 0, 0)); err == nil || !strings.Contains(err.Error(), "6 years") {
		t.Errorf("purging five-year-old rows: %v, want refused", err)
	}
	err = pg.InTx(ctx, db.Pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL callroom.audit_purge = 'on'`); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM audit_events WHERE action = 'young.event'`)
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "six years") {
		t.Errorf("DELETE of young rows in purge mode: %v, want refused", err)
	}
	if _, err := db.Pool.Exec(ctx, `DELETE FROM audit_events WHERE action = 'old.event'`); err == nil {
		t.Error("DELETE of old rows outside purge mode succeeded")
	}

	n, err := audit.Purge(ctx, db.Pool, audit.RetentionCutoff(time.Now()))
	if err != nil || n != 3 {
		t.Fatalf("purge: %d %v, want the 3 old rows", n, err)
	}
	var left int
	db.Pool.QueryRow(ctx, `SELECT count(*) FROM audit_events WHERE action = 'young.event'`).Scan(&left) //nolint:errcheck
	if left != 3 {
		t.Errorf("%d young rows left, want 3", left)
	}
	seal(t, db) // the purge's own event
	rep, err := audit.Verify(ctx, db.Pool)
	if err != nil || rep.FirstSeq != 4 || rep.Verified != 4 {
		t.Errorf("after purge: %+v %v, want seq 4.. verified", rep, err)
	}
}

// TestApplicationRoleCannotChangeTheTrail applies docs/app-role.sql to a
// fresh role and checks it can record and seal, but not update or delete,
// even with the triggers disabled.
func TestApplicationRoleCannotChangeTheTrail(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	script, err := os.ReadFile("../docs/app-role.sql")
	if err != nil {
		t.Fatal(err)
	}
	role := "callroom_app_" + strings.ReplaceAll(uuid.NewString()[:8], "-", "")
	if _, err := db.Pool.Exec(ctx, `CREATE ROLE `+role+` NOLOGIN`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		db.Pool.Exec(context.Background(), `DROP OWNED BY `+role) //nolint:errcheck
		db.Pool.Exec(context.Background(), `DROP ROLE `+role)     //nolint:errcheck
	})
	if _, err := db.Pool.Exec(ctx, strings.ReplaceAll(string(script), "callroom_app", role)); err != nil {
		t.Fatal(err)
	}
	record(t, db, 1, "test.write")
	as := func(sql string) error {
		return pg.InTx(ctx, db.Pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update`); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `SET LOCAL ROLE `+role); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, sql)
			return err
		})
	}
	for _, q := range []string{
		`UPDATE audit_events SET action = 'forged'`,
		`DELETE FROM audit_events`,
		`TRUNCATE audit_events`,
		`DELETE FROM audit_chain_head`,
	} {
		if err := as(q); err == nil || !strings.Contains(err.Error(), "permission denied") {
			t.Errorf("%s as the application role: %v, want permission denied", q, err)
		}
	}
	for _, q := range []string{
		`INSERT INTO audit_events (action, outcome) VALUES ('app.write', 'success')`,
		`UPDATE audit_events SET seq = 1, prev_hash = '\x00', hash = '\x01' WHERE seq IS NULL AND id = (SELECT min(id) FROM audit_events)`,
		`UPDATE audit_chain_head SET seq = seq`,
	} {
		if err := as(q); err != nil {
			t.Errorf("%s as the application role: %v", q, err)
		}
	}
}

// TestVerifyWhileSealing: verify runs against a live trail (writers and the
// sealer busy); rows sealed after it read the chain head are not its
// business and must not look like tampering.
func TestVerifyWhileSealing(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	// Enough rows that a walk takes a while (several batches).
	if _, err := db.Pool.Exec(ctx, `INSERT INTO audit_events (action, outcome, patient_ref)
		SELECT 'test.bulk', 'success', 'Patient/' || g FROM generate_series(1, 12000) g`); err != nil {
		t.Fatal(err)
	}
	seal(t, db)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			record(t, db, 5, "test.write")
			if _, err := audit.Seal(ctx, db.Pool); err != nil {
				t.Error(err)
				return
			}
		}
	})
	for range 10 {
		if rep, err := audit.Verify(ctx, db.Pool); err != nil {
			t.Errorf("verify during sealing: %v (%+v)", err, rep)
			break
		}
	}
	close(stop)
	wg.Wait()
}

// TestVerifyFromAnAnchor: the quick run from a recorded head checks the
// rows after it, and catches an alteration there.
func TestVerifyFromAnAnchor(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	record(t, db, 5, "thread.read")
	seal(t, db)
	head, err := audit.Verify(ctx, db.Pool)
	if err != nil {
		t.Fatal(err)
	}
	hash, _ := hex.DecodeString(head.HeadHash)
	record(t, db, 3, "message.list")
	seal(t, db)
	rep, err := audit.VerifyFrom(ctx, db.Pool, head.HeadSeq, hash)
	if err != nil || rep.Verified != 3 || rep.FirstSeq != 6 || rep.HeadSeq != 8 {
		t.Fatalf("from the anchor: %+v %v, want seq 6..8", rep, err)
	}
	tamper(t, db, `UPDATE audit_events SET action = 'forged' WHERE seq = 7`)
	rep, err = audit.VerifyFrom(ctx, db.Pool, head.HeadSeq, hash)
	if !errors.Is(err, audit.ErrChainBroken) || rep.Break == nil || rep.Break.Seq != 7 {
		t.Errorf("altered after the anchor: %+v %v, want seq 7 named", rep, err)
	}
	if _, err := audit.VerifyFrom(ctx, db.Pool, head.HeadSeq, make([]byte, 32)); !errors.Is(err, audit.ErrChainBroken) {
		t.Errorf("a wrong anchor hash: %v, want broken", err)
	}
}
