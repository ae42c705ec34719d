package pgtest_test

import (
	"context"
	"testing"

	"github.com/callroom/callroom/internal/pgtest"
	"github.com/callroom/callroom/migrations"
)

func TestEachTestGetsItsOwnMigratedDatabase(t *testing.T) {
	t.Parallel()
	a, b := pgtest.New(t), pgtest.New(t)
	if a.Name == b.Name {
		t.Fatalf("two tests share database %s", a.Name)
	}
	ctx := context.Background()
	if _, err := a.Pool.Exec(ctx, "INSERT INTO users (email, name) VALUES ('a@example.org', 'A')"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := b.Pool.QueryRow(ctx, "SELECT count(*) FROM users").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("second database sees %d users written to the first", n)
	}
	var v int
	if err := a.Pool.QueryRow(ctx, "SELECT max(version) FROM callroom_migrations").Scan(&v); err != nil {
		t.Fatal(err)
	}
	if v != migrations.Version() {
		t.Fatalf("template at migration %d, binary has %d", v, migrations.Version())
	}
	var river int
	if err := a.Pool.QueryRow(ctx, "SELECT count(*) FROM river_migration").Scan(&river); err != nil || river == 0 {
		t.Fatalf("river migrations missing: %d, %v", river, err)
	}
}

func TestAuditEventsRefuseUpdateAndDelete(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	if _, err := db.Pool.Exec(ctx, "INSERT INTO audit_events (action, outcome) VALUES ('test', 'success')"); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		"UPDATE audit_events SET action = 'changed'",
		"DELETE FROM audit_events",
		"TRUNCATE audit_events",
	} {
		if _, err := db.Pool.Exec(ctx, q); err == nil {
			t.Errorf("%s: succeeded, want refused", q)
		}
	}
}
