package benchutil

import (
	"encoding/json"
	"sync"
	"time"

	"github.com/google/uuid"
)

// Notices records when each page's first page.notify was read from the
// event streams it watches: the physician's side of the paging benchmarks.
type Notices struct {
	mu      sync.Mutex
	at      map[uuid.UUID]time.Time
	arrived chan struct{}
}

// NewNotices returns an empty record.
func NewNotices() *Notices {
	return &Notices{at: map[uuid.UUID]time.Time{}, arrived: make(chan struct{}, 1)}
}

// Watch reads s's page.notify events until the stream ends.
func (n *Notices) Watch(s *Stream) {
	go func() {
		for e := range s.Events {
			if e.Type != "page.notify" {
				continue
			}
			var d struct {
				PageID uuid.UUID `json:"page_id"`
			}
			if json.Unmarshal(e.Data, &d) != nil {
				continue
			}
			n.mu.Lock()
			if _, dup := n.at[d.PageID]; !dup {
				n.at[d.PageID] = e.Received
			}
			n.mu.Unlock()
			select {
			case n.arrived <- struct{}{}:
			default:
			}
		}
	}()
}

// At returns when page's notice was read.
func (n *Notices) At(page uuid.UUID) (time.Time, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	t, ok := n.at[page]
	return t, ok
}

// Count is how many of pages have had their notice read.
func (n *Notices) Count(pages []uuid.UUID) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := 0
	for _, id := range pages {
		if _, ok := n.at[id]; ok {
			c++
		}
	}
	return c
}

// Arrived is signalled (without blocking, so possibly merged) whenever a
// notice is read.
func (n *Notices) Arrived() <-chan struct{} { return n.arrived }
