package events

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// A Delivery is an event that a stream wrote to one of its user's live
// clients, and when.
type Delivery struct {
	Event
	DeliveredAt time.Time
}

// Batching of Deliveries. The window is short next to anything a person
// sees (a "delivered to 12 of 50" that is a few ms late), and long next to
// the spread of one event's writes to a thread's members' streams, which all
// wake together: a message to 50 members costs one or two commits instead
// of 50.
const (
	deliveryWindow   = 5 * time.Millisecond
	deliveryMaxBatch = 1000
	// deliveryMaxPending bounds what waits in memory when the database is
	// slower than the streams. Beyond it a stream records its own delivery,
	// as if there were no batching: that is backpressure, and loses nothing.
	deliveryMaxPending = 20 * deliveryMaxBatch
	// deliveryTimeout bounds one write of a batch, and the last one at
	// shutdown.
	deliveryTimeout = 10 * time.Second
)

// Deliveries records that events reached live clients, in batches. Its Add
// is a Hub's OnDelivered; its Run, one per process, hands what was added to
// record in batches: every delivery added within a few milliseconds, at most
// 1000 at a time, in one call, so that record can write them with one
// statement and one commit instead of one per delivery.
//
// Nothing is recorded twice, and a delivery is lost only with the process:
// Run records what is queued when its context ends, and after that Add
// records each delivery at once itself. A kill -9 (or a crash) loses the
// deliveries of the last few milliseconds that were written to clients but
// not yet recorded. Recording them one by one, as before, lost the same kind
// of thing (a write to the client happens before its record), only over a
// shorter time. What is recorded this way is a courtesy status ("delivered
// to"), not an audit record; see docs/ARCHITECTURE.md.
type Deliveries struct {
	record func(ctx context.Context, batch []Delivery) error
	log    *slog.Logger

	wake chan struct{} // one slot: something was added

	mu      sync.Mutex
	pending []Delivery
	stopped bool
}

// NewDeliveries returns a Deliveries that writes batches with record. record
// must be safe to call again with the same deliveries (after a failure, the
// batch is tried once more) and from several goroutines at once (after Run
// has returned, or when too much is pending, Add calls it itself). log may
// be nil.
func NewDeliveries(record func(ctx context.Context, batch []Delivery) error, log *slog.Logger) *Deliveries {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Deliveries{record: record, log: log.With("component", "events"), wake: make(chan struct{}, 1)}
}

// Add queues the delivery of e, which a stream has just written to a live
// client. It does not wait for the database unless Run has returned or too
// many deliveries are pending; then it records this one itself, with ctx.
func (d *Deliveries) Add(ctx context.Context, e Event) {
	one := Delivery{Event: e, DeliveredAt: time.Now()}
	d.mu.Lock()
	if d.stopped || len(d.pending) >= deliveryMaxPending {
		d.mu.Unlock()
		d.write(ctx, []Delivery{one})
		return
	}
	d.pending = append(d.pending, one)
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run records batches until ctx ends, then records what is still pending
// and returns. Call it once, and stop it only after the streams that Add to
// it have ended (or keep adding: Add then records by itself).
func (d *Deliveries) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			d.stop()
			return
		case <-d.wake:
		}
		// Let the rest of this event's deliveries (and any others) arrive,
		// unless a full batch is already waiting.
		if !d.full() {
			t := time.NewTimer(deliveryWindow)
			select {
			case <-ctx.Done():
				t.Stop()
				d.stop()
				return
			case <-t.C:
			}
		}
		d.flush(ctx)
	}
}

func (d *Deliveries) full() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.pending) >= deliveryMaxBatch
}

// flush writes everything pending, a batch at a time. What is added while it
// writes waits for the next flush.
func (d *Deliveries) flush(ctx context.Context) {
	d.mu.Lock()
	all := d.pending
	d.pending = nil
	d.mu.Unlock()
	for len(all) > 0 {
		n := min(len(all), deliveryMaxBatch)
		d.write(ctx, all[:n])
		all = all[n:]
	}
}

// stop makes later Adds record by themselves and writes what is pending,
// with a context of its own: the one Run was given has ended.
func (d *Deliveries) stop() {
	d.mu.Lock()
	d.stopped = true
	d.mu.Unlock()
	d.flush(context.Background())
}

// write records batch, trying once more after a failure (a deadlock with
// another instance's batch, a connection lost), and logs a batch it could
// not record. The log says how many and why, never which: ids of users and
// messages do not belong in logs either.
func (d *Deliveries) write(ctx context.Context, batch []Delivery) {
	ctx = context.WithoutCancel(ctx)
	var err error
	for attempt := range 2 {
		if attempt > 0 {
			time.Sleep(deliveryWindow)
		}
		wctx, cancel := context.WithTimeout(ctx, deliveryTimeout)
		err = d.record(wctx, batch)
		cancel()
		if err == nil {
			return
		}
	}
	d.log.Warn("recording deliveries failed; they stay unrecorded", "deliveries", len(batch), "err", err.Error())
}
