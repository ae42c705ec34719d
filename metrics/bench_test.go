package metrics_test

import (
	"context"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/callroom/callroom/internal/benchutil"
)

// BenchmarkMetricsCost: what metrics cost the API. GET /api/v1/me (one
// authenticated request, the lightest route that touches the database) from
// 8 clients at once, reported as requests/s, without scraping and while
// /metrics is scraped every 100 ms (150 times Prometheus's usual 15 s, to make
// the cost visible); and one scrape's own time. Target: scraping costs under
// 5 % of requests/s (docs/PERFORMANCE.md).
func BenchmarkMetricsCost(b *testing.B) {
	in := benchutil.Start(b, benchutil.Options{})
	c := in.User("Dr A", "physician")
	ctx := context.Background()
	load := func(b *testing.B, scrapeEvery time.Duration) {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		if scrapeEvery > 0 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				t := time.NewTicker(scrapeEvery)
				defer t.Stop()
				for {
					select {
					case <-stop:
						return
					case <-t.C:
						if resp, err := c.HTTP.Get(in.URL + "/metrics"); err == nil {
							io.Copy(io.Discard, resp.Body) //nolint:errcheck
							resp.Body.Close()
						}
					}
				}
			}()
		}
		b.SetParallelism(4) // 8 clients on 2 cores
		start := time.Now()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if status, _, err := c.Do(ctx, "GET", "/api/v1/me", nil); err != nil || status != 200 {
					b.Errorf("GET /api/v1/me: %d %v", status, err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
		close(stop)
		wg.Wait()
	}
	b.Run("no_scrape", func(b *testing.B) { load(b, 0) })
	b.Run("scrape_100ms", func(b *testing.B) { load(b, 100*time.Millisecond) })
	b.Run("scrape", func(b *testing.B) {
		for b.Loop() {
			resp, err := http.Get(in.URL + "/metrics")
			if err != nil {
				b.Fatal(err)
			}
			n, _ := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			b.SetBytes(n)
		}
	})
}
