package events

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
)

// Subscription is one client's view of a user's stream, from a position on.
// Next is called from one goroutine at a time; Close may be called from any.
//
// The hub only tells a subscription "the user's stream has reached seq s"
// (or, after a reconnect, "look again"); the subscription then reads the
// rows after its own position from user_events. Reading the table rather
// than trusting notifications is what makes delivery gap-free and
// duplicate-free: the position only advances over rows actually returned, in
// seq order, and a row is visible only once every earlier seq of that user
// has committed.
type Subscription struct {
	hub  *Hub
	user uuid.UUID

	wake      chan struct{} // one slot: a pending wake-up, never a queue
	closed    chan struct{}
	closeOnce sync.Once
	known     atomic.Int64 // highest seq the hub has heard of for this user
	force     atomic.Bool  // the hub reconnected: read even if known says nothing new

	// Owned by the goroutine calling Next.
	last    int64   // seq of the last event returned
	checked int64   // known as of the last read: wakes up to here are answered
	pending bool    // read before waiting: at start, after a full batch, after a failed read
	started bool    // the first read has happened
	buf     []Event // read but not yet returned
}

// UserID is whose stream this is.
func (s *Subscription) UserID() uuid.UUID { return s.user }

// LastSeq is the seq of the last event Next returned (or the starting
// position): what a client would send as Last-Event-ID. Like Next, call it
// from the goroutine that calls Next.
func (s *Subscription) LastSeq() int64 { return s.last }

// Next returns the next event, waiting for one if need be. It returns
// ctx.Err() when ctx ends, ErrClosed after Close, ErrHubStopped when the hub
// stops, or the database's error when a read fails. None of these moves the
// position, so after a transient error (the database restarting) calling
// Next again carries on where it left off; a ctx that ends mid-read aborts
// only that read.
func (s *Subscription) Next(ctx context.Context) (Event, error) {
	for {
		if len(s.buf) > 0 {
			e := s.buf[0]
			s.buf = s.buf[1:]
			s.last = e.Seq
			return e, nil
		}
		select {
		case <-s.closed:
			return Event{}, ErrClosed
		default:
		}
		if s.pending || s.force.Swap(false) || s.known.Load() > max(s.last, s.checked) {
			if err := s.read(ctx); err != nil {
				s.pending = true
				return Event{}, err
			}
			continue
		}
		select {
		case <-s.wake:
		case <-s.closed:
			return Event{}, ErrClosed
		case <-s.hub.done:
			return Event{}, ErrHubStopped
		case <-ctx.Done():
			return Event{}, ctx.Err()
		}
	}
}

// read fills buf with the events after last.
func (s *Subscription) read(ctx context.Context) error {
	k := s.known.Load()
	evs, err := Since(ctx, s.hub.pool, s.user, s.last, MaxBatch)
	if err != nil {
		return err
	}
	first := !s.started
	if first && len(evs) == 0 && s.last > 0 {
		// Nothing after the client's position: normal if it is up to date,
		// but a position beyond the stream's end (a made-up id, a restored
		// database) would otherwise wait, silently, for events it will
		// never be shown.
		cur, err := CurrentSeq(ctx, s.hub.pool, s.user)
		if err != nil {
			return err
		}
		if cur < s.last {
			evs = []Event{s.reset(cur, "unknown_position")}
		}
	}
	if len(evs) > 0 && evs[0].Type != TypeReset && evs[0].Seq != s.last+1 {
		// Sequences have no holes, so a missing predecessor was purged
		// (older than Retention): say so rather than skip it silently.
		evs = append([]Event{s.reset(evs[0].Seq-1, "expired")}, evs...)
	}
	s.started = true
	s.pending = len(evs) >= MaxBatch
	s.checked = max(s.checked, k)
	s.buf = evs
	return nil
}

func (s *Subscription) reset(seq int64, reason string) Event {
	data, _ := json.Marshal(map[string]string{"reason": reason})
	return Event{UserID: s.user, Seq: seq, Type: TypeReset, Data: data, At: time.Now()}
}

// notify records that the stream has reached seq and wakes the reader
// without ever blocking: if a wake-up is already pending, it covers this one.
func (s *Subscription) notify(seq int64) {
	for {
		cur := s.known.Load()
		if seq <= cur || s.known.CompareAndSwap(cur, seq) {
			break
		}
	}
	s.signal()
}

// forceRead makes the reader look at the table whatever it knows.
func (s *Subscription) forceRead() {
	s.force.Store(true)
	s.signal()
}

func (s *Subscription) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Close ends the subscription; a Next in progress returns ErrClosed.
func (s *Subscription) Close() {
	s.closeOnce.Do(func() {
		close(s.closed)
		s.hub.remove(s)
	})
}
