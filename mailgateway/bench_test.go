package mailgateway_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callroom/callroom/internal/benchutil"
	"github.com/callroom/callroom/mailgateway"
)

// smtpBenchRun is how long each sender sends for.
const smtpBenchRun = 8 * time.Second

// BenchmarkSMTPPages is a lab analyzer (or answering service) paging by
// email: each sender keeps one SMTP connection open and sends stat pages to
// its own service alias back to back, each message waiting for its 250, the
// way an MTA delivers a queue over one connection. Each service's step 0
// pages its own physician, whose event stream is open. Targets: >= 200
// pages/s accepted; 250 -> the physician's page.notify p99 <= 50 ms.
//
// Metrics: pages/s (250s per second, all senders), smtp-p50/p99-ms (end of
// data -> 250: the commit of page, timeline, audit and step job),
// p50/p99/max-ms (250 -> page.notify read from the stream; the page is
// published before the 250 is written, so the median can be negative),
// data-to-notify-p50/p99-ms (end of data -> page.notify: what the sender
// waits for the physician to be told), missing (pages whose event had not
// arrived 15 s after the last send).
// Targets and results: docs/PERFORMANCE.md.
func BenchmarkSMTPPages(b *testing.B) {
	for _, senders := range []int{1, 4} {
		b.Run(fmt.Sprintf("senders=%d", senders), func(b *testing.B) { smtpPages(b, senders) })
	}
}

func smtpPages(b *testing.B, senders int) {
	const domain = "pager.bench.example.org"
	ctx := context.Background()
	in := benchutil.Start(b, benchutil.Options{Mail: &mailgateway.Config{Domains: []string{domain}}})

	notices := benchutil.NewNotices()
	services := make([]uuid.UUID, senders)
	for i := range senders {
		doctor := in.User(fmt.Sprintf("Dr %d", i), "physician")
		services[i] = in.Service(fmt.Sprintf("Lab %d", i), 10*time.Minute, doctor.User.ID)
		if _, err := in.DB.Pool.Exec(ctx, `UPDATE services SET email_alias = $1 WHERE id = $2`,
			fmt.Sprintf("lab%d", i), services[i]); err != nil {
			b.Fatal(err)
		}
		stream, err := doctor.Stream(ctx)
		if err != nil {
			b.Fatal(err)
		}
		defer stream.Close() //nolint:errcheck
		notices.Watch(stream)
	}

	var lat, accept, dataToNotify benchutil.Latencies
	var total, missing int
	var elapsed time.Duration
	run := 0
	for b.Loop() {
		run++
		// acks[i] holds when each of sender i's messages ended its data
		// and got its 250, in the order sent; one connection sends one
		// message at a time, so its pages are created in that order too.
		acks := make([][]smtpAck, senders)
		errs := make([]error, senders)
		var wg sync.WaitGroup
		start := time.Now()
		for i := range senders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				acks[i], errs[i] = smtpSender(in.MailAddr, fmt.Sprintf("lab%d@%s", i, domain), fmt.Sprintf("r%d-s%d", run, i), start.Add(smtpBenchRun), &accept)
			}()
		}
		wg.Wait()
		elapsed += time.Since(start)
		for _, err := range errs {
			if err != nil {
				b.Fatal(err)
			}
		}
		lastSend := time.Now()
		for i := range senders {
			total += len(acks[i])
			ids, err := pageIDsByCreation(ctx, in, services[i], start)
			if err != nil {
				b.Fatal(err)
			}
			if len(ids) != len(acks[i]) {
				b.Fatalf("sender %d: %d messages accepted, %d pages created", i, len(acks[i]), len(ids))
			}
			for k, id := range ids {
				var at time.Time
				for {
					if t, ok := notices.At(id); ok {
						at = t
						break
					}
					if time.Since(lastSend) > 15*time.Second {
						missing++
						at = time.Now()
						break
					}
					time.Sleep(5 * time.Millisecond)
				}
				lat.Add(at.Sub(acks[i][k].accepted))
				dataToNotify.Add(at.Sub(acks[i][k].sent))
			}
		}
		b.Logf("%d senders, %d pages in %s: 250 -> page.notify %s; end of data -> 250 %s",
			senders, total, elapsed.Round(time.Millisecond), lat.String(), accept.String())
	}
	b.ReportMetric(float64(total)/elapsed.Seconds(), "pages/s")
	b.ReportMetric(benchutil.Ms(accept.Quantile(0.5)), "smtp-p50-ms")
	b.ReportMetric(benchutil.Ms(accept.Quantile(0.99)), "smtp-p99-ms")
	lat.Report(b, "")
	b.ReportMetric(benchutil.Ms(dataToNotify.Quantile(0.5)), "data-to-notify-p50-ms")
	b.ReportMetric(benchutil.Ms(dataToNotify.Quantile(0.99)), "data-to-notify-p99-ms")
	b.ReportMetric(float64(missing), "missing")
}

// smtpAck is when a message's data ended, and when it got its 250.
type smtpAck struct{ sent, accepted time.Time }

// smtpSender sends stat pages to rcpt over one connection until deadline
// and returns when each ended its data and got its 250. accept gets the
// time from the one to the other.
func smtpSender(addr, rcpt, tag string, deadline time.Time, accept *benchutil.Latencies) ([]smtpAck, error) {
	c, err := smtp.Dial(addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if err := c.Hello("analyzer.bench.example.org"); err != nil {
		return nil, err
	}
	var acks []smtpAck
	for n := 0; time.Now().Before(deadline); n++ {
		msg := fmt.Sprintf("From: analyzer@lab.example.org\r\nTo: %s\r\nSubject: STAT: critical value %d\r\n"+
			"Message-ID: <%s-%d@lab.example.org>\r\nDate: %s\r\n\r\nPotassium 6.9 mmol/L, repeat sample.\r\n",
			rcpt, n, tag, n, time.Now().Format(time.RFC1123Z))
		if err := c.Mail("analyzer@lab.example.org", nil); err != nil {
			return acks, err
		}
		if err := c.Rcpt(rcpt, nil); err != nil {
			return acks, err
		}
		w, err := c.Data()
		if err != nil {
			return acks, err
		}
		if _, err := strings.NewReader(msg).WriteTo(w); err != nil {
			return acks, err
		}
		sent := time.Now()
		if err := w.Close(); err != nil {
			return acks, fmt.Errorf("message %d: %w", n, err)
		}
		now := time.Now()
		accept.Add(now.Sub(sent))
		acks = append(acks, smtpAck{sent: sent, accepted: now})
	}
	return acks, c.Quit()
}

// pageIDsByCreation lists a service's pages created since from, oldest
// first.
func pageIDsByCreation(ctx context.Context, in *benchutil.Instance, service uuid.UUID, from time.Time) ([]uuid.UUID, error) {
	rows, err := in.DB.Pool.Query(ctx, `SELECT id FROM pages WHERE service_id = $1 AND created_at >= $2 ORDER BY created_at, id`,
		service, from)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
}
