package events

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/callroom/callroom/internal/pgtest"
)

// BenchmarkPublishToStream measures what a paged physician waits for: from
// the start of the publishing transaction to the event being returned by
// every recipient's subscription (commit, NOTIFY, the hub's wake, the
// subscriber's read). It reports the median and 99th percentile; run it with
// `make bench`, which uses a durable (fsync on) cluster.
func BenchmarkPublishToStream(b *testing.B) {
	for _, n := range []int{1, 50} {
		b.Run(fmt.Sprintf("recipients=%d", n), func(b *testing.B) {
			db := pgtest.New(b)
			h := startHub(b, db.Pool)
			users := newUsers(b, db.Pool, n)
			subs := make([]*Subscription, n)
			for i, u := range users {
				subs[i] = h.Subscribe(u, 0)
				defer subs[i].Close()
			}
			data := map[string]string{"page_id": uuid.NewString(), "notification_id": uuid.NewString(), "priority": "stat"}
			var lat []time.Duration
			for b.Loop() {
				start := time.Now()
				publish(b, db.Pool, users, "page.notify", data)
				for _, s := range subs {
					next(b, s)
				}
				lat = append(lat, time.Since(start))
			}
			slices.Sort(lat)
			ms := func(q float64) float64 {
				return float64(lat[int(q*float64(len(lat)-1))].Microseconds()) / 1000
			}
			b.ReportMetric(ms(0.50), "p50_ms")
			b.ReportMetric(ms(0.99), "p99_ms")
		})
	}
}
