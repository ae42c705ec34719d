package audit_test

import (
	"context"
	"testing"

	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/internal/pgtest"
)

// BenchmarkSealAndVerify measures the two passes over the trail on 50,000
// rows shaped like real ones (actor, patient, details): how far behind the
// sealer can fall before a 5-second interval is not enough, and how long
// 'callroom audit verify' takes on six years of a hospital's trail.
func BenchmarkSealAndVerify(b *testing.B) {
	const rows = 50_000
	db := pgtest.New(b)
	ctx := context.Background()
	insert := func() {
		_, err := db.Pool.Exec(ctx, `INSERT INTO audit_events (actor_id, action, object_type, object_id, outcome, client_addr, patient_ref, details)
			SELECT gen_random_uuid(), 'thread.read', 'thread', gen_random_uuid()::text, 'success', '10.1.2.3',
			       'Patient/' || (g % 5000), jsonb_build_object('count', g % 7, 'thread_id', gen_random_uuid())
			FROM generate_series(1, $1) g`, rows)
		if err != nil {
			b.Fatal(err)
		}
	}
	b.Run("seal", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			insert()
			b.StartTimer()
			n, err := audit.Seal(ctx, db.Pool)
			if err != nil || n != rows {
				b.Fatalf("sealed %d: %v", n, err)
			}
		}
		b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "rows/s")
	})
	b.Run("verify", func(b *testing.B) {
		var total int64
		for b.Loop() {
			rep, err := audit.Verify(ctx, db.Pool)
			if err != nil {
				b.Fatal(err)
			}
			total += rep.Verified
		}
		b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "rows/s")
	})
}
