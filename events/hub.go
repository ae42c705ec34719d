package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ListenerApplicationName is the application_name of a hub's LISTEN
// connection, so operators (and tests) can find it in pg_stat_activity.
const ListenerApplicationName = "callroom-events"

const (
	// Reconnect backoff: quick enough that a failover or restart costs
	// clients well under a second of lateness, slow enough that a database
	// that is down is not hammered by every instance.
	minBackoff = 100 * time.Millisecond
	maxBackoff = 5 * time.Second
	// A listener that hears nothing for probeAfter sends a ping, so a
	// connection that died silently (a dropped NAT entry, a failed-over
	// host) is noticed in seconds, not after the kernel's TCP keepalive.
	probeAfter   = 30 * time.Second
	probeTimeout = 5 * time.Second
)

// Hub is one instance's end of the event fan-out: it LISTENs for every
// published event and wakes the local subscriptions of its user. Create one
// per process with NewHub and run it with Run.
//
// The hub never reads events or writes to clients itself; it only sets a
// flag and does a non-blocking send on each subscription's one-slot wake
// channel. A slow or stuck client therefore cannot delay the hub or any other
// client, and a burst of notifications for one user costs that subscriber one
// read, not one per notification.
type Hub struct {
	// OnDelivered, when not nil, is called by the stream handler after an
	// event has been written and flushed to a live client (in-app page
	// notifications and messages are marked "delivered" from it). It runs
	// synchronously on the stream's goroutine with the request's context, so
	// it delays only that one stream; but one event reaches many streams at
	// once, so rather than write to the database here, queue the delivery
	// (Deliveries.Add) and record many in one statement. Set it before
	// serving. It is not called for TypeReset events, which deliver nothing.
	OnDelivered func(ctx context.Context, e Event)

	pool *pgxpool.Pool
	log  *slog.Logger

	mu   sync.RWMutex
	subs map[uuid.UUID]map[*Subscription]struct{}
	n    atomic.Int64

	started atomic.Bool
	done    chan struct{} // closed when Run returns
	pid     atomic.Uint32 // the listener's backend pid while listening

	// connect opens the listener's connection; tests replace it to keep a
	// hub disconnected for as long as they need.
	connect func(ctx context.Context) (*pgx.Conn, error)

	// watchers are other packages' channels on the listener's connection
	// (Watch), set before Run.
	watchers []Watcher
}

// Watcher is another package's channel that a hub LISTENs on with its own,
// so an instance keeps one listener connection however many packages need
// to hear of commits.
type Watcher struct {
	Channel string
	// Notified is called with each payload on Channel, on the hub's
	// goroutine: it must not block.
	Notified func(payload string)
	// Listening is called with true once Channel is listened on (after each
	// reconnect), and with false as soon as the connection is lost: in
	// between, commits that notify Channel may go unheard.
	Listening func(bool)
}

// Watch adds w to what the hub listens on. Call it before Run.
func (h *Hub) Watch(w Watcher) {
	if h.started.Load() {
		panic("events: Hub.Watch after Run")
	}
	h.watchers = append(h.watchers, w)
}

// NewHub returns a hub whose subscriptions read from pool and whose listener
// connects with pool's configuration. log may be nil.
func NewHub(pool *pgxpool.Pool, log *slog.Logger) *Hub {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &Hub{
		pool: pool,
		log:  log.With("component", "events"),
		subs: map[uuid.UUID]map[*Subscription]struct{}{},
		done: make(chan struct{}),
	}
	h.connect = h.dial
	return h
}

// dial opens the listener's connection outside the pool, on a copy of the
// pool's connection settings. Not pool.Acquire (+Hijack), because:
//   - reconnecting must not queue behind a pool that is exhausted under load
//     (or, once hijacked, count against nothing while the pool opens a
//     replacement anyway): a new connection is what we need either way;
//   - it gets its own application_name, so the listener is recognisable in
//     pg_stat_activity, and none of the pool's lifetime or idle policies,
//     which would recycle a connection that is meant to live for days.
//
// It must reach PostgreSQL directly: LISTEN does not work through a
// transaction-pooling proxy such as PgBouncer in transaction mode.
func (h *Hub) dial(ctx context.Context) (*pgx.Conn, error) {
	cfg := h.pool.Config().ConnConfig.Copy()
	cfg.RuntimeParams["application_name"] = ListenerApplicationName
	return pgx.ConnectConfig(ctx, cfg)
}

// Run listens until ctx ends, then returns nil; it returns an error only when
// called a second time. When the connection is lost it reconnects with
// backoff (100 ms doubling to 5 s) and, once listening again, wakes every
// subscription: each re-reads from its own position, so events committed
// while nobody listened (a PostgreSQL restart, a network blip) are delivered
// late but none is lost. When Run returns, subscriptions waiting for events
// end with ErrHubStopped.
func (h *Hub) Run(ctx context.Context) error {
	if !h.started.CompareAndSwap(false, true) {
		return errors.New("events: Hub.Run called twice")
	}
	defer close(h.done)
	backoff := minBackoff
	for {
		up, err := h.listen(ctx)
		if ctx.Err() != nil {
			return nil
		}
		// A connection that held for a while earns a fast retry; one that
		// keeps dying right after connecting keeps backing off.
		if up >= maxBackoff {
			backoff = minBackoff
		}
		h.log.Warn("listener connection lost; reconnecting", "err", err.Error(), "retry_in", backoff.String())
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(backoff*2, maxBackoff)
	}
}

// listen runs one listener connection until it fails or ctx ends, reporting
// how long it was listening.
func (h *Hub) listen(ctx context.Context) (time.Duration, error) {
	conn, err := h.connect(ctx)
	if err != nil {
		return 0, fmt.Errorf("connect: %w", err)
	}
	listening := false
	defer func() {
		if listening {
			for _, w := range h.watchers {
				w.Listening(false)
			}
		}
		h.pid.Store(0)
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn.Close(cctx) //nolint:errcheck // it is being thrown away
		cancel()
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+Channel); err != nil {
		return 0, fmt.Errorf("listen: %w", err)
	}
	for _, w := range h.watchers {
		if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{w.Channel}.Sanitize()); err != nil {
			return 0, fmt.Errorf("listen %s: %w", w.Channel, err)
		}
	}
	listening = true
	for _, w := range h.watchers {
		w.Listening(true)
	}
	start := time.Now()
	h.pid.Store(conn.PgConn().PID())
	h.log.Info("listening", "channel", Channel, "pid", conn.PgConn().PID())
	// LISTEN has committed: every later commit will notify us, and
	// everything committed before it is in the table. Waking everyone now
	// makes each subscription read what it missed while we were away
	// (including, on the first connect, anything published before Run).
	h.wakeAll()
	for {
		wctx, cancel := context.WithTimeout(ctx, probeAfter)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		if n != nil {
			h.dispatch(n.Channel, n.Payload)
		}
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return time.Since(start), ctx.Err()
		case errors.Is(err, context.DeadlineExceeded) && !conn.IsClosed():
			// Quiet, not necessarily dead: pgx leaves the connection usable
			// after a timed-out wait, so ask it.
			pctx, cancel := context.WithTimeout(ctx, probeTimeout)
			err = conn.Ping(pctx)
			cancel()
			if err != nil {
				return time.Since(start), fmt.Errorf("probe: %w", err)
			}
		default:
			return time.Since(start), err
		}
	}
}

// dispatch wakes the subscriptions of the user a payload names, or hands
// a watched channel's payload to its watcher.
func (h *Hub) dispatch(channel, payload string) {
	if channel != Channel {
		for _, w := range h.watchers {
			if w.Channel == channel {
				w.Notified(payload)
			}
		}
		return
	}
	user, seqText, _ := strings.Cut(payload, ":")
	id, err1 := uuid.Parse(user)
	seq, err2 := strconv.ParseInt(seqText, 10, 64)
	if err1 != nil || err2 != nil {
		h.log.Warn("ignoring a malformed notification", "channel", Channel, "bytes", len(payload))
		return
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	for s := range h.subs[id] {
		s.notify(seq)
	}
}

func (h *Hub) wakeAll() {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for _, set := range h.subs {
		for s := range set {
			s.forceRead()
		}
	}
}

// Subscribe opens userID's stream after lastSeq: the first event Next
// returns is the one with seq lastSeq+1 (or a TypeReset if that one no
// longer exists). Close the subscription when done with it.
func (h *Hub) Subscribe(userID uuid.UUID, lastSeq int64) *Subscription {
	s := &Subscription{
		hub:     h,
		user:    userID,
		last:    max(lastSeq, 0),
		wake:    make(chan struct{}, 1),
		closed:  make(chan struct{}),
		pending: true,
	}
	h.mu.Lock()
	set := h.subs[userID]
	if set == nil {
		set = map[*Subscription]struct{}{}
		h.subs[userID] = set
	}
	set[s] = struct{}{}
	h.mu.Unlock()
	h.n.Add(1)
	return s
}

func (h *Hub) remove(s *Subscription) {
	h.mu.Lock()
	if set := h.subs[s.user]; set != nil {
		delete(set, s)
		if len(set) == 0 {
			delete(h.subs, s.user)
		}
	}
	h.mu.Unlock()
	h.n.Add(-1)
}

// Connections returns the number of open subscriptions (a gauge for metrics).
func (h *Hub) Connections() int { return int(h.n.Load()) }

// ListenerPID returns the PostgreSQL backend pid of the listener connection,
// or 0 while the hub is not listening.
func (h *Hub) ListenerPID() uint32 { return h.pid.Load() }

// CurrentSeq is the package's CurrentSeq on the hub's pool.
func (h *Hub) CurrentSeq(ctx context.Context, userID uuid.UUID) (int64, error) {
	return CurrentSeq(ctx, h.pool, userID)
}

// Since is the package's Since on the hub's pool.
func (h *Hub) Since(ctx context.Context, userID uuid.UUID, afterSeq int64, limit int) ([]Event, error) {
	return Since(ctx, h.pool, userID, afterSeq, limit)
}
