package escalation

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/events"
	"github.com/callroom/callroom/internal/pg"
)

// Pages sent at once are committed together (pg.Group): each page's reads
// go with the group's BEGIN, its writes in lockstep with the others' (one
// round trip per step for the whole group), and the events of all of them
// with the COMMIT, in one statement that locks each recipient's counter
// once, in user id order, as a page's own transaction does.
//
// Why: at a few hundred pages a second on two cores, a page's own
// transaction spends as much of PostgreSQL's time on what surrounds its
// statements (wake-ups, BEGIN and COMMIT, a WAL flush) as on them, and a
// recipient paged by many holds their counter locked from one publication
// to its flush, one page at a time (docs/PERFORMANCE.md).
//
// Only while groupPagesFrom pages or more are being sent at once: a page
// alone goes as before, in 3 round trips, where a group takes one more
// (its events go after its members' last step). Only pages whose whole
// transaction goes through its Writes are grouped (groupable); a page
// that turns out to need more (a schedule to resolve, someone whose contact
// methods were not read first) leaves its group before writing anything and
// is sent on its own, as is every page of a group that fails.
const (
	groupPagesFrom = 4
	pageGroupSize  = 64
	// Two groups at once, taking turns with their statements (pg.Group):
	// one group's BEGIN and reads, or its events and COMMIT, overlap the
	// other's statements. The pages that arrive meanwhile make the next
	// group bigger. Two groups running their statements together cost
	// 30-40 % more CPU per page for no more pages a second; taking turns
	// sent 9-21 % more than one group at a time (docs/PERFORMANCE.md).
	pageGroups = 2
)

// errSentAlone is what a page leaves its group with when its first step
// needs reads of its own.
var errSentAlone = errors.New("escalation: the first step resolves a schedule")

// groupable reports whether in may go in a group: its transaction needs
// nothing but what its first reads bring (no dedup key to look up, no
// patient thread to file it in).
func (s *Store) groupable(in NewPage) bool {
	return in.DedupKey == "" && in.PatientRef == "" && s.firstStepFault == nil
}

// createInGroup is create (inline, committing) in the next group of pages.
// An error wrapping pg.ErrNotCommitted leaves nothing written: the page is
// then sent on its own.
func (s *Store) createInGroup(ctx context.Context, by audit.Actor, in NewPage, a *announcement) (Page, error) {
	var policy Policy
	first, methods := firstReads(in, &policy, a)
	ectx, deferred := events.Defer(ctx)
	var p Page
	err := s.pages.InTx(ctx, []pg.Read{first, methods}, func(tx pgx.Tx, w *pg.Writes) error {
		if in.ServiceID != nil && !policy.firstStepNamesPeople() {
			return errSentAlone
		}
		// The page's writes are its share of the group's steps.
		a.writes = *w
		var err error
		if p, err = s.sendPage(ectx, tx, by, in, policy, a, true, false); err == nil && a.writes.Len() > 0 {
			// The group commits what was sent; nothing may be left behind.
			err = fmt.Errorf("escalation: %d statements of page %s not sent in its group", a.writes.Len(), p.ID)
		}
		return err
	}, deferred)
	return p, err
}

// firstStepNamesPeople reports whether p's first step targets people only
// (no schedule): who it reaches is known from the policy.
func (p Policy) firstStepNamesPeople() bool {
	if len(p.Steps) == 0 {
		return false
	}
	for _, t := range p.Steps[0].Targets {
		if t.UserID == nil {
			return false
		}
	}
	return true
}
