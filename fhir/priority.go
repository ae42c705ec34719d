package fhir

import (
	"context"
	"sync"
	"time"
)

// PagingWindow is how long after a page was sent an instance still applies
// EHR notifications at the paging cap (see Priority): a page's work does
// not end with its request (its delivery jobs, the next pages of a burst).
const PagingWindow = 200 * time.Millisecond

// DefaultIdleWritingBatches is how many batches one instance applies at
// once while it sends no pages, unless Config.IdleWritingBatches says
// otherwise. Measured on 2 cores at 500 notifications/s with 20 workers
// (docs/PERFORMANCE.md): 16 applied notifications within p99 121-237 ms,
// 8 within 330-694 ms.
const DefaultIdleWritingBatches = 16

// Priority decides how many batches of EHR notifications one instance
// applies at once, so that pages come first.
//
// Why: applying notifications and sending pages compete for the same cores
// and the same pool. On 2 cores at 500 notifications/s, 16 batches at once
// applied notifications within their target (p99 <= 250 ms) but pages sent
// meanwhile reached the physician at p99 0.4-0.6 s instead of 0.12 s; 4 at
// once kept paging as it was and missed the notifications' target. No fixed
// number serves both, and a nurse's page matters more than a care-team
// update. So the cap follows what the instance is doing: the paging cap
// (Config.WritingBatches) while a page is being sent or was sent less than
// PagingWindow ago, the idle cap (Config.IdleWritingBatches) otherwise. A
// batch that is writing finishes; only batches yet to start wait, oldest
// first.
//
// Why in-process: what pages and batches share is this instance's CPU and
// pool, so the signal is this instance's own pages (a counter and a time
// under a mutex, no SQL). In a deployment of several instances each protects
// the pages it sends; a page sent through another instance does not slow
// this one's EHR work.
type Priority struct {
	paging, idle int
	window       time.Duration
	now          func() time.Time

	mu       sync.Mutex
	sending  int       // pages being sent
	lastSent time.Time // when the last page sent was done
	writing  int       // batches holding a slot
	waiting  []chan struct{}
	timer    *time.Timer // grants again when the window ends
}

// NewPriority returns a Priority that lets paging batches write at once
// while pages are sent (and for window after), idle otherwise.
func NewPriority(paging, idle int, window time.Duration) *Priority {
	return &Priority{paging: paging, idle: max(idle, paging), window: window, now: time.Now}
}

// Paging tells p that a page is being sent; done says it has been (sent or
// failed). Call it around the work of sending.
func (p *Priority) Paging() (done func()) {
	p.mu.Lock()
	p.sending++
	p.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			p.mu.Lock()
			defer p.mu.Unlock()
			p.sending--
			p.lastSent = p.now()
			p.grant()
		})
	}
}

// limit is how many batches may write at now, and until when that holds
// unless a page starts (zero: until the pages being sent are done, or for
// good).
func (p *Priority) limit(now time.Time) (int, time.Time) {
	if p.sending > 0 {
		return p.paging, time.Time{}
	}
	if until := p.lastSent.Add(p.window); !p.lastSent.IsZero() && now.Before(until) {
		return p.paging, until
	}
	return p.idle, time.Time{}
}

// acquire waits for a slot to write a batch in; release gives it back.
func (p *Priority) acquire(ctx context.Context) (release func(), err error) {
	p.mu.Lock()
	if lim, _ := p.limit(p.now()); len(p.waiting) == 0 && p.writing < lim {
		p.writing++
		p.mu.Unlock()
		return p.release, nil
	}
	ch := make(chan struct{})
	p.waiting = append(p.waiting, ch)
	p.grant() // arms the timer if the window is what holds it back
	p.mu.Unlock()
	select {
	case <-ch:
		return p.release, nil
	case <-ctx.Done():
		p.mu.Lock()
		defer p.mu.Unlock()
		for i, w := range p.waiting {
			if w == ch {
				p.waiting = append(p.waiting[:i], p.waiting[i+1:]...)
				return nil, ctx.Err()
			}
		}
		// Granted meanwhile: give the slot to the next.
		p.writing--
		p.grant()
		return nil, ctx.Err()
	}
}

func (p *Priority) release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.writing--
	p.grant()
}

// grant gives free slots to the oldest waiters; if some must wait for the
// window to end, it sets the timer for then. p.mu is held.
func (p *Priority) grant() {
	now := p.now()
	lim, until := p.limit(now)
	for len(p.waiting) > 0 && p.writing < lim {
		p.writing++
		close(p.waiting[0])
		p.waiting = p.waiting[1:]
	}
	if len(p.waiting) == 0 || until.IsZero() || p.writing >= p.idle {
		return
	}
	if p.timer == nil {
		p.timer = time.AfterFunc(until.Sub(now), func() {
			p.mu.Lock()
			defer p.mu.Unlock()
			p.grant()
		})
	} else {
		p.timer.Reset(until.Sub(now))
	}
}

// Paging tells the store that this instance is sending a page: until done
// is called, and for PagingWindow after, it applies at most
// Config.WritingBatches batches at once (see Priority). Package escalation
// calls it (escalation.Store.Paging).
func (s *Store) Paging() (done func()) { return s.priority.Paging() }
