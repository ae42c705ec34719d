package fhir

import (
	"context"
	"testing"
	"time"
)

// The cap is the paging one while a page is being sent and for the window
// after, the idle one otherwise.
func TestPriorityLimit(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name     string
		sending  int
		lastSent time.Time
		at       time.Time
		want     int
	}{
		{"no page ever", 0, time.Time{}, t0, 16},
		{"a page being sent", 1, time.Time{}, t0, 4},
		{"a page being sent, another sent long ago", 1, t0.Add(-time.Hour), t0, 4},
		{"a page sent just now", 0, t0, t0, 4},
		{"a page sent within the window", 0, t0, t0.Add(199 * time.Millisecond), 4},
		{"the window over", 0, t0, t0.Add(200 * time.Millisecond), 16},
		{"long after", 0, t0, t0.Add(time.Hour), 16},
	}
	for _, c := range cases {
		p := NewPriority(4, 16, 200*time.Millisecond)
		p.sending, p.lastSent = c.sending, c.lastSent
		if got, _ := p.limit(c.at); got != c.want {
			t.Errorf("%s: limit %d, want %d", c.name, got, c.want)
		}
	}
}

// Batches wait for a slot while pages are sent and proceed, oldest first,
// when the cap rises: when the last page is done and its window has passed.
func TestPriorityWaitsForPaging(t *testing.T) {
	t.Parallel()
	const window = 100 * time.Millisecond
	ctx := context.Background()
	p := NewPriority(1, 2, window)
	page := p.Paging()
	first, err := p.acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	type grant struct {
		batch int
		free  func()
	}
	granted := make(chan grant, 2)
	for i := range 2 {
		go func() {
			if free, err := p.acquire(ctx); err == nil {
				granted <- grant{i, free}
			}
		}()
		for deadline := time.Now().Add(5 * time.Second); waiting(p) != i+1; { // queued in order
			if time.Now().After(deadline) {
				t.Fatalf("batch %d did not wait for a slot while a page was being sent", i)
			}
			time.Sleep(time.Millisecond)
		}
	}
	notYet := func(d time.Duration, why string) {
		t.Helper()
		select {
		case g := <-granted:
			t.Fatalf("batch %d wrote %s", g.batch, why)
		case <-time.After(d):
		}
	}
	next := func(want int) grant {
		t.Helper()
		select {
		case g := <-granted:
			if g.batch != want {
				t.Fatalf("batch %d wrote before batch %d", g.batch, want)
			}
			return g
		case <-time.After(10 * time.Second):
			t.Fatalf("batch %d still waits", want)
		}
		return grant{}
	}
	notYet(3*window, "beside another while a page was being sent")
	donePaging := time.Now()
	page()
	notYet(window/2, "within the window after a page")
	g := next(0)
	if d := time.Since(donePaging); d < window {
		t.Fatalf("batch 0 wrote %v after the page, within the window", d)
	}
	notYet(window, "beyond the idle cap")
	g.free()
	next(1)
	// A page again while two write: one done leaves one writing, the
	// paging cap, and a new batch waits.
	page = p.Paging()
	defer page()
	first()
	ctx4, cancel := context.WithTimeout(ctx, 3*window)
	defer cancel()
	if _, err := p.acquire(ctx4); err == nil {
		t.Fatal("a batch wrote beside another while a page was being sent")
	}
	if n := waiting(p); n != 0 {
		t.Fatalf("%d waiting after the only waiter gave up", n)
	}
}

func waiting(p *Priority) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.waiting)
}

// The configuration's caps, defaults applied: the idle one is never below
// the paging one.
func TestConfigCaps(t *testing.T) {
	t.Parallel()
	cases := []struct {
		writing, idle        int
		wantPaging, wantIdle int
	}{
		{0, 0, DefaultWritingBatches, DefaultIdleWritingBatches},
		{8, 0, 8, DefaultIdleWritingBatches},
		{32, 0, 32, 32},
		{2, 2, 2, 2},
		{0, 24, DefaultWritingBatches, 24},
	}
	for _, c := range cases {
		paging, idle := Config{WritingBatches: c.writing, IdleWritingBatches: c.idle}.writingBatches()
		if paging != c.wantPaging || idle != c.wantIdle {
			t.Errorf("writing_batches %d, idle %d: caps %d and %d, want %d and %d", c.writing, c.idle, paging, idle, c.wantPaging, c.wantIdle)
		}
	}
}
