package events

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
)

// recorder is a Deliveries' record function that keeps the batches it was
// given, failing while fail is set.
type recorder struct {
	mu      sync.Mutex
	batches [][]Delivery
	calls   int
	fail    bool
	got     chan struct{} // one slot: a batch was recorded
}

func newRecorder() *recorder { return &recorder{got: make(chan struct{}, 1)} }

func (r *recorder) record(_ context.Context, batch []Delivery) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if r.fail {
		return errors.New("the database is away")
	}
	r.batches = append(r.batches, append([]Delivery(nil), batch...))
	select {
	case r.got <- struct{}{}:
	default:
	}
	return nil
}

// total returns how many deliveries were recorded, in how many batches.
func (r *recorder) total() (deliveries, batches int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, b := range r.batches {
		deliveries += len(b)
	}
	return deliveries, len(r.batches)
}

// waitFor waits until n deliveries were recorded.
func (r *recorder) waitFor(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(wait)
	for {
		if got, _ := r.total(); got >= n {
			return
		}
		select {
		case <-r.got:
		case <-deadline:
			got, _ := r.total()
			t.Fatalf("%d deliveries recorded, want %d", got, n)
		}
	}
}

func runDeliveries(d *Deliveries) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); d.Run(ctx) }()
	return func() { cancel(); <-done }
}

func streamEvents(n int) []Event {
	es := make([]Event, n)
	for i := range es {
		es[i] = Event{UserID: uuid.New(), Seq: 7, Type: "message.created", Data: []byte(`{"message_id":"m"}`)}
	}
	return es
}

// TestDeliveriesBatch: one event's deliveries to 50 streams are recorded in
// one call, not one each; each once, with the time it was added.
func TestDeliveriesBatch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t.Run("queued before a flush", func(t *testing.T) {
		r := newRecorder()
		d := NewDeliveries(r.record, nil)
		before := time.Now()
		es := streamEvents(50)
		for _, e := range es {
			d.Add(ctx, e)
		}
		stop := runDeliveries(d)
		defer stop()
		r.waitFor(t, 50)
		if n, batches := r.total(); n != 50 || batches != 1 {
			t.Fatalf("%d deliveries in %d batches, want 50 in 1", n, batches)
		}
		for i, got := range r.batches[0] {
			if got.UserID != es[i].UserID || got.DeliveredAt.Before(before) || got.DeliveredAt.After(time.Now()) {
				t.Errorf("delivery %d: %+v, want event %d added after %s", i, got, i, before)
			}
		}
	})
	t.Run("added while running", func(t *testing.T) {
		r := newRecorder()
		d := NewDeliveries(r.record, nil)
		stop := runDeliveries(d)
		defer stop()
		for _, e := range streamEvents(50) {
			d.Add(ctx, e)
		}
		r.waitFor(t, 50)
		// Not an exact count: a loaded machine may pause this loop longer
		// than the window. One call per delivery is what must not happen.
		if n, batches := r.total(); n != 50 || batches >= 50 {
			t.Errorf("%d deliveries in %d batches, want 50 in fewer batches", n, batches)
		}
	})
}

// TestDeliveriesStop: what is pending when Run ends is recorded, and a
// delivery added afterwards (a stream still finishing) is recorded at once.
func TestDeliveriesStop(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := newRecorder()
	d := NewDeliveries(r.record, nil)
	for _, e := range streamEvents(3) {
		d.Add(ctx, e)
	}
	ctx2, cancel := context.WithCancel(ctx)
	cancel()
	d.Run(ctx2) // ends at once, recording what is pending
	if n, _ := r.total(); n != 3 {
		t.Fatalf("%d deliveries recorded when Run ended, want 3", n)
	}
	d.Add(ctx, streamEvents(1)[0])
	if n, batches := r.total(); n != 4 || batches != 2 {
		t.Errorf("after Run ended, Add left %d deliveries in %d batches, want 4 in 2", n, batches)
	}
}

// TestDeliveriesFailure: a batch that cannot be recorded is tried once more,
// then logged with its size and the error, never with ids, and the next
// batch is recorded as usual.
func TestDeliveriesFailure(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	logged := make(logLines, 10)
	r := newRecorder()
	r.fail = true
	d := NewDeliveries(r.record, slog.New(slog.NewTextHandler(logged, nil)))
	es := streamEvents(2)
	for _, e := range es {
		d.Add(ctx, e)
	}
	stop := runDeliveries(d)
	defer stop()
	select {
	case line := <-logged:
		if !strings.Contains(line, "deliveries=2") || !strings.Contains(line, "the database is away") || strings.Contains(line, es[0].UserID.String()) {
			t.Errorf("log: %s", line)
		}
	case <-time.After(wait):
		t.Fatal("a failed batch was not logged")
	}
	r.mu.Lock()
	calls := r.calls
	r.fail = false
	r.mu.Unlock()
	if calls != 2 {
		t.Errorf("a failing batch was tried %d times, want 2", calls)
	}
	d.Add(ctx, streamEvents(1)[0])
	r.waitFor(t, 1)
}

// logLines receives what a logger writes, a line at a time.
type logLines chan string

func (l logLines) Write(p []byte) (int, error) {
	l <- string(p)
	return len(p), nil
}
