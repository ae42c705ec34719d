package ratelimit_test

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callroom/callroom/internal/pgtest"
	"github.com/callroom/callroom/ratelimit"
)

// TestLimitHoldsAcrossLimiters uses two limiters (as two instances would) on
// one database and a burst from many goroutines: exactly Limit requests get
// through, whichever limiter they hit.
func TestLimitHoldsAcrossLimiters(t *testing.T) {
	t.Parallel()
	db := pgtest.NewWithPoolSize(t, 8)
	a, b := ratelimit.New(db.Pool), ratelimit.New(db.Pool)
	rule := ratelimit.Rule{Limit: 7, Window: time.Hour}
	ctx := context.Background()
	var mu sync.Mutex
	allowed, refused := 0, 0
	var retry time.Duration
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := a
			if i%2 == 1 {
				l = b
			}
			d, err := l.Allow(ctx, "login-ip:10.0.0.1", rule)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if d.Allowed {
				allowed++
			} else {
				refused++
				retry = d.RetryAfter
			}
		}()
	}
	wg.Wait()
	if allowed != 7 || refused != 13 {
		t.Fatalf("allowed %d, refused %d; want 7 and 13", allowed, refused)
	}
	if retry <= 0 || retry > time.Hour {
		t.Errorf("RetryAfter = %v, want within the window", retry)
	}
	// Another bucket is counted apart.
	if d, _ := a.Allow(ctx, "login-ip:10.0.0.2", rule); !d.Allowed {
		t.Error("another bucket was refused")
	}
}

// TestPreviousWindowWeighs puts a full previous window in place: right
// after the boundary the sliding estimate still refuses.
func TestPreviousWindowWeighs(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	l := ratelimit.New(db.Pool)
	ctx := context.Background()
	_, err := db.Pool.Exec(ctx, `INSERT INTO rate_limits (bucket, window_start, hits)
		VALUES ('k', to_timestamp(floor(extract(epoch FROM now()) / 86400) * 86400) - interval '1 day', 10000)`)
	if err != nil {
		t.Fatal(err)
	}
	d, err := l.Allow(ctx, "k", ratelimit.Rule{Limit: 10, Window: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	// The previous day's 10,000 are weighted by the part of the sliding day
	// still in it: over the limit of 10 unless the test runs in the last
	// 90 seconds of a UTC day.
	if now := time.Now().UTC(); d.Allowed && !(now.Hour() == 23 && now.Minute() >= 58) {
		t.Fatal("a full previous window did not count")
	}
	if d, _ := l.Allow(ctx, "k", ratelimit.Rule{}); !d.Allowed {
		t.Fatal("an empty rule refused")
	}
}

// BenchmarkAllow is the cost the limiter adds to each limited request (one
// upsert round trip), with 8 callers on distinct buckets.
func BenchmarkAllow(b *testing.B) {
	db := pgtest.NewWithPoolSize(b, 8)
	l := ratelimit.New(db.Pool)
	rule := ratelimit.Rule{Limit: 1 << 30, Window: time.Minute}
	ctx := context.Background()
	var n atomic.Int64
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		bucket := "bench:" + strconv.FormatInt(n.Add(1), 10)
		for pb.Next() {
			if _, err := l.Allow(ctx, bucket, rule); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
