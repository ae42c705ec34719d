package fhir

import (
	"context"
	"time"

	"github.com/google/uuid"
)

// ProcessNow runs what one ProcessArgs job runs, for tests that hold locks
// around it.
func (s *Store) ProcessNow(ctx context.Context, id uuid.UUID) error { return s.process(ctx, id) }

// LastPageSent is when the store last heard that a page was sent (zero:
// never), for tests of the server's wiring.
func (s *Store) LastPageSent() time.Time {
	s.priority.mu.Lock()
	defer s.priority.mu.Unlock()
	return s.priority.lastSent
}

// ApplyOneByOne makes batches apply their notifications one after the
// other, never in lockstep, for tests that compare the two.
func (s *Store) ApplyOneByOne() { s.together = false }

// AcceptedInGroups is how many notifications were committed in a group.
func (s *Store) AcceptedInGroups() int64 { return s.accepts.Committed() }
