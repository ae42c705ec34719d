package pg_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/callroom/callroom/internal/pgtest"
)

// TestUUIDCodec: uuid.UUID values, pointers and slices reach PostgreSQL and
// come back unchanged, in the binary and the text protocol, and NULL scans
// as it does through uuid.Scan.
func TestUUIDCodec(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	a, b := uuid.New(), uuid.New()
	c, err := db.Pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []any{a, &a, []*uuid.UUID{&a}} {
		oid := uint32(pgtype.UUIDOID)
		if _, ok := v.([]*uuid.UUID); ok {
			oid = pgtype.UUIDArrayOID
		}
		var buf []byte
		buf, err = c.Conn().TypeMap().Encode(oid, pgtype.BinaryFormatCode, v, buf)
		if err != nil {
			t.Fatalf("%T: %v", v, err)
		}
		plan := c.Conn().TypeMap().PlanEncode(oid, pgtype.BinaryFormatCode, v)
		if name := fmt.Sprintf("%T", plan); strings.Contains(name, "DriverValuer") {
			t.Errorf("%T is encoded through database/sql (%s), not directly", v, name)
		}
	}
	c.Release()
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeSimpleProtocol} {
		t.Run(mode.String(), func(t *testing.T) {
			var text string
			var back uuid.UUID
			var ptr *uuid.UUID
			var ids []uuid.UUID
			// pgx cannot send a slice in the simple protocol (nor could it
			// before registerUUID): an array literal stands in.
			var list any = []uuid.UUID{a, b}
			if mode == pgx.QueryExecModeSimpleProtocol {
				list = "{" + a.String() + "," + b.String() + "}"
			}
			err := db.Pool.QueryRow(ctx, `SELECT $1::uuid::text, $1::uuid, $2::uuid, $3::uuid[]`, mode, a, &b, list).
				Scan(&text, &back, &ptr, &ids)
			if err != nil {
				t.Fatal(err)
			}
			if text != a.String() || back != a || ptr == nil || *ptr != b || len(ids) != 2 || ids[0] != a || ids[1] != b {
				t.Errorf("got %s, %s, %v, %v; want %s, %s, %s, [%s %s]", text, back, ptr, ids, a, a, b, a, b)
			}

			var nilPtr *uuid.UUID
			kept := b
			err = db.Pool.QueryRow(ctx, `SELECT ($1::uuid IS NULL)::text, NULL::uuid, NULL::uuid`, mode, nilPtr).Scan(&text, &ptr, &kept)
			if err != nil {
				t.Fatal(err)
			}
			if text != "true" || ptr != nil || kept != b {
				t.Errorf("NULLs: got %s, %v, %s; want true, <nil>, %s (unchanged)", text, ptr, kept, b)
			}
		})
	}
}
