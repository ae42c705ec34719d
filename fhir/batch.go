package fhir

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/callroom/callroom/events"
	"github.com/callroom/callroom/internal/pg"
	"github.com/callroom/callroom/worker"
)

// BatchSize bounds how many waiting notifications of one subscription one
// job processes in one transaction.
//
// Why batches: every notification's changes end with a commit, and the
// events they publish lock each recipient's stream counter until that
// commit; a physician on many care teams, or an admission burst, serialises
// the transactions on that lock, one fsync each. A batch pays the commit
// and the lock once. Why not larger: each notification is applied under its
// own savepoint, a subtransaction, and PostgreSQL tracks up to 64 of those
// per transaction cheaply.
const BatchSize = 32

// claimFor is how long a job's claim on a batch lasts. A batch normally
// takes well under a second; a claim that lapses (the job died) lets the
// notifications' own jobs take them. A job still working past it is
// harmless: notifications are locked and re-checked before they are
// applied, and applying one twice converges.
const claimFor = 30 * time.Second

type storedNotification struct {
	ID          uuid.UUID `db:"id"`
	Flavor      Flavor    `db:"flavor"`
	Body        []byte    `db:"body"`
	EventNumber *int64    `db:"event_number"`
	Deleted     bool      `db:"deleted"`
}

// process makes sure notification id gets processed. Its job claims it with
// up to BatchSize-1 others of its subscription that are waiting and not
// claimed, and processes them together. A job that finds its notification
// claimed by another job is done at once (one round trip): the claimer
// answers for it. A notification it cannot apply it releases until a
// backoff has passed, with a job for then, in the same transaction; if its
// transaction fails, it releases its claims and its job is retried; if it
// dies, the claims lapse and River rescues its job; and the periodic tick
// queues a job for anything left waiting unclaimed (see sweep).
func (s *Store) process(ctx context.Context, id uuid.UUID) error {
	c, err := s.claim(ctx, id)
	if err != nil {
		return err
	}
	if !c.found {
		return river.JobCancel(fmt.Errorf("fhir notification %s is gone", id))
	}
	sub, ok := s.cfg.subscription(c.subscription)
	if !ok {
		_, err := s.db.Exec(ctx, `UPDATE fhir_notifications SET processed_at = now(), outcome = $2 WHERE id = ANY ($1) AND processed_at IS NULL`,
			append(claimedIDs(c.batch), id), "subscription no longer configured: ignored")
		return err
	}
	if len(c.batch) == 0 {
		return nil // processed, or claimed by another job
	}
	return s.processBatch(ctx, sub, c.batch)
}

// claimed is what a claim found: notification id's subscription and the
// batch claimed, oldest first: the order they are applied in, so that two
// changes of one encounter in a batch apply in the order the EHR sent them,
// whichever notification's job claimed them.
type claimed struct {
	found        bool
	subscription string
	batch        []storedNotification
}

// claimSQL is claim's statement. The candidates are gathered first (own,
// then the oldest others of its subscription), then locked by primary key;
// an OR of the two in the locking query cannot use an index and scanned the
// whole table (75 ms a claim at 2,000 notifications). Every job claims
// others, also one whose own notification is taken: River runs jobs oldest
// first, and those mostly find theirs in a batch already, so claiming only
// with its own left a backlog to River's rate of jobs.
const claimSQL = `WITH own AS (
		SELECT id, subscription,
			processed_at IS NULL AND (claimed_until IS NULL OR claimed_until < now()) AS claimable,
			set_config('synchronous_commit', 'off', true) AS async
		FROM fhir_notifications WHERE id = $1
	), candidates AS (
		SELECT id FROM own WHERE claimable
		UNION ALL
		(SELECT w.id FROM fhir_notifications w
		 WHERE w.subscription = (SELECT subscription FROM own) AND w.processed_at IS NULL
		   AND (w.claimed_until IS NULL OR w.claimed_until < now()) AND w.id <> $1
		 ORDER BY w.received_at LIMIT $2)
	), locked AS (
		SELECT n.id FROM fhir_notifications n
		WHERE n.id = ANY (ARRAY(SELECT id FROM candidates))
		  AND n.processed_at IS NULL AND (n.claimed_until IS NULL OR n.claimed_until < now())
		FOR UPDATE SKIP LOCKED
	), taken AS (
		UPDATE fhir_notifications n SET claimed_until = now() + $3::interval
		FROM locked WHERE n.id = locked.id
		RETURNING n.id, n.flavor, n.body, n.event_number, n.deleted, n.received_at
	)
	SELECT own.subscription, taken.id, taken.flavor, taken.body, taken.event_number, taken.deleted
	FROM own LEFT JOIN taken ON true
	ORDER BY taken.received_at`

// claim claims notification id, if it is waiting and not claimed, and then
// up to BatchSize-1 others of its subscription, oldest first, in one
// statement.
// A claim is a lease (see claimFor), so the statement commits without
// waiting for the disk (set_config(..., true) lasts for its own implicit
// transaction): a claim lost in a crash only lets the notifications be
// claimed again.
//
// The conditions stand in the locking query itself, not only in the
// subquery: after taking a row's lock, PostgreSQL re-checks them on the
// row's latest version, so a row another job claimed since this statement's
// snapshot is not claimed twice.
func (s *Store) claim(ctx context.Context, id uuid.UUID) (claimed, error) {
	rows, _ := s.db.Query(ctx, claimSQL, id, BatchSize-1, claimFor)
	type row struct {
		Subscription string     `db:"subscription"`
		ID           *uuid.UUID `db:"id"`
		Flavor       *Flavor    `db:"flavor"`
		Body         []byte     `db:"body"`
		EventNumber  *int64     `db:"event_number"`
		Deleted      *bool      `db:"deleted"`
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByName[row])
	if err != nil || len(got) == 0 {
		return claimed{}, err
	}
	c := claimed{found: true, subscription: got[0].Subscription}
	for _, r := range got {
		if r.ID != nil { // nil: nothing claimed (the LEFT JOIN's one row)
			c.batch = append(c.batch, storedNotification{ID: *r.ID, Flavor: *r.Flavor, Body: r.Body, EventNumber: r.EventNumber, Deleted: *r.Deleted})
		}
	}
	return c, nil
}

// MaxFailures is how often a notification may fail to apply before it is
// given up: processed, its outcome saying so with the last error, and a
// warning logged (by id). Backoffs double from 2 s to 10 minutes, so that is
// about two hours of an EHR or a bug in the way.
const MaxFailures = 20

func retryBackoff(failures int) time.Duration {
	return min(time.Second<<min(failures, 30), 10*time.Minute)
}

// retryLater releases notifications that failed to apply until their
// backoff has passed, so that other batches leave them alone, and queues a
// job for then, all in tx; those that failed MaxFailures times are given up
// (returned, for the caller to report once tx has committed). Errors are
// stored as outcomes, never logged: they may name a patient.
func (s *Store) retryLater(ctx context.Context, tx pgx.Tx, w *pg.Writes, failed map[uuid.UUID]error) (gaveUp []uuid.UUID, err error) {
	if len(failed) == 0 {
		return nil, nil
	}
	ids := make([]uuid.UUID, 0, len(failed))
	reasons := make([]string, 0, len(failed))
	for id, err := range failed {
		ids = append(ids, id)
		reasons = append(reasons, clip(err.Error(), 400))
	}
	rows, _ := tx.Query(ctx, `UPDATE fhir_notifications n SET failures = n.failures + 1,
			processed_at = CASE WHEN n.failures + 1 >= $3 THEN now() END,
			outcome = CASE WHEN n.failures + 1 >= $3 THEN 'gave up after ' || (n.failures + 1) || ' failures: ' ELSE 'failure ' || (n.failures + 1) || ': ' END || f.reason
		FROM unnest($1::uuid[], $2::text[]) AS f (id, reason)
		WHERE n.id = f.id AND n.processed_at IS NULL
		RETURNING n.id, n.failures, n.processed_at IS NOT NULL`, ids, reasons, MaxFailures)
	var retry []river.InsertManyParams
	var id uuid.UUID
	var failures int
	var done bool
	_, err = pgx.ForEachRow(rows, []any{&id, &failures, &done}, func() error {
		if done {
			gaveUp = append(gaveUp, id)
			return nil
		}
		at := s.now().Add(retryBackoff(failures))
		w.Exec(`UPDATE fhir_notifications SET claimed_until = $2 WHERE id = $1`, id, at)
		retry = append(retry, river.InsertManyParams{Args: ProcessArgs{NotificationID: id}, InsertOpts: &river.InsertOpts{ScheduledAt: at}})
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(retry) == 0 {
		return gaveUp, nil
	}
	_, err = worker.InsertManyTxLater(ctx, s.river, tx, w, retry)
	return gaveUp, err
}

// prepared is a notification ready to write: its resources decoded and
// their people resolved (EHR reads done), with what it changes.
type prepared struct {
	id      uuid.UUID
	notes   []string
	changes []change
	// state records what the notification says about its subscription
	// (events seen, changes read up to), in the same savepoint.
	state func(w *pg.Writes)
	// readWith is the notification of the batch whose search of changes
	// answers this one too: this one is done only if that one is written
	// in the same transaction.
	readWith uuid.UUID
	// keys are what its changes touch that another notification's may
	// (prepareResource); alone, that it is applied on its own.
	keys  []string
	alone bool
}

// change is one resource's effect on threads, written in the batch's
// transaction. It says what it did (no PHI: references and counts). It
// queues its writes in w, reads through w (pg.Writes.FlushQuery), and
// flushes w before it uses tx itself: a notification costs a few round
// trips, not one per statement. What it leaves in w is flushed after it.
type change func(ctx context.Context, tx pgx.Tx, w *pg.Writes) (string, error)

// batchReads is what the notifications of one batch share while they are
// prepared: one search of changes serves all of them, and event numbers
// are checked against those before them in the batch.
type batchReads struct {
	started   time.Time
	resolver  *resolver
	searchBy  uuid.UUID // the notification whose changes search covers the batch
	lastEvent *int64    // backport: highest event number known so far
}

// processBatch prepares a claimed batch without a transaction (EHR reads
// may be slow), then, in one transaction, applies each notification that is
// still waiting under a savepoint, so one that fails leaves the others done.
// Those it could not apply are released for a retry (see retryLater). The
// events of the whole batch are published together at the end, and the
// reads of its new patients' identifiers queued in one insert. An error
// means nothing was committed; the claims are released.
func (s *Store) processBatch(ctx context.Context, sub Subscription, batch []storedNotification) error {
	done := map[uuid.UUID]bool{}    // applied
	failed := map[uuid.UUID]error{} // not applied: released for a retry
	reads := &batchReads{started: s.now(), resolver: s.newResolver()}
	var ready []prepared
	for _, n := range batch {
		p, err := s.prepare(ctx, sub, n, reads)
		if err != nil {
			failed[n.ID] = err
			continue
		}
		ready = append(ready, p)
	}
	ids := make([]uuid.UUID, len(ready))
	for i, p := range ready {
		ids[i] = p.id
	}
	// Pages first: while this instance sends pages, at most
	// Config.WritingBatches batches write at once, so that a burst from the
	// EHR leaves paging its share of the machine and of the pool's
	// connections; otherwise Config.IdleWritingBatches (see Priority).
	free, err := s.priority.acquire(ctx)
	if err != nil {
		s.release(batch)
		return err
	}
	defer free()
	dctx, published := events.Defer(ctx)
	dctx, patients := gatherPatientReads(dctx)
	var gaveUp []uuid.UUID
	var oneByOne bool // applying the batch together failed
	err = pg.InTx(ctx, s.db, func(tx pgx.Tx) error {
		var mine []uuid.UUID
		if len(ids) > 0 {
			// Normally ours alone; a job that outlived its claim waits here
			// for the one that took over, and skips what it processed.
			// The savepoint, kept by what follows, undoes an attempt to
			// apply the batch together.
			var lead pg.Writes
			lead.Queue(`SELECT id FROM fhir_notifications WHERE id = ANY ($1) AND processed_at IS NULL ORDER BY id FOR UPDATE`, ids).Query(func(rows pgx.Rows) (err error) {
				mine, err = pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
				return err
			})
			lead.Exec(`SAVEPOINT batch`)
			if err := lead.Flush(ctx, tx); err != nil {
				return err
			}
		}
		var todo []prepared
		for _, p := range ready {
			if slices.Contains(mine, p.id) {
				todo = append(todo, p)
			}
		}
		var writes pg.Writes
		if s.together && together(todo) {
			outcomes, err := applyTogether(dctx, tx, todo)
			if err == nil {
				for i, p := range todo {
					writes.Exec(`UPDATE fhir_notifications SET processed_at = now(), outcome = $2 WHERE id = $1`, p.id, clip(outcomes[i], 500))
					done[p.id] = true
				}
				todo = nil
			} else {
				// One by one, each under its own savepoint, so that the
				// one that failed is told apart and the others are done.
				oneByOne = true
				if errors.Is(err, pg.ErrLockstep) {
					// Not the notifications' fault: code run in lockstep
					// used the transaction directly, and every batch it is
					// in pays for it (see docs/ARCHITECTURE.md).
					s.log.Error("fhir batch applied one by one: a change used its transaction directly in lockstep", "notifications", len(todo))
				}
				if _, err := tx.Exec(ctx, `ROLLBACK TO SAVEPOINT batch`); err != nil {
					return err
				}
				published.Truncate(0)
				patients.truncate(0)
			}
		}
		for _, p := range todo {
			if p.readWith != uuid.Nil && !done[p.readWith] {
				failed[p.id] = errors.New("the search of changes it relies on was not applied")
				continue
			}
			// The savepoint goes with the notification's first read.
			var w pg.Writes
			w.Exec(`SAVEPOINT notification`)
			savepoint := w.Last()
			mark, marked := published.Len(), patients.len()
			outcome, err := p.write(dctx, tx, &w)
			if err == nil {
				err = w.Flush(ctx, tx)
			}
			if err != nil {
				// Rolled back only if this notification's savepoint was
				// sent: the savepoint of the same name before it is the
				// previous notification's, done.
				if !w.Queued(savepoint) {
					if _, rerr := tx.Exec(ctx, `ROLLBACK TO SAVEPOINT notification`); rerr != nil {
						return rerr
					}
				}
				published.Truncate(mark)
				patients.truncate(marked)
				failed[p.id] = err
				continue
			}
			writes.Exec(`UPDATE fhir_notifications SET processed_at = now(), outcome = $2 WHERE id = $1`, p.id, clip(outcome, 500))
			done[p.id] = true
		}
		if err := patients.insert(ctx, s, tx); err != nil {
			return err
		}
		var err error
		if gaveUp, err = s.retryLater(ctx, tx, &writes, failed); err != nil {
			return err
		}
		completeJobsOf(&writes, done)
		if err := writes.Flush(ctx, tx); err != nil {
			return err
		}
		return published.Flush(ctx, tx)
	})
	if err != nil {
		s.release(batch)
		return err
	}
	if oneByOne {
		s.observe().FHIR("batch", "one_by_one")
	}
	for range done {
		s.observe().FHIR("processing", "applied")
	}
	for range failed {
		s.observe().FHIR("processing", "failed")
	}
	for _, id := range gaveUp {
		s.observe().FHIR("processing", "given_up")
		s.log.Warn("fhir notification given up after repeated failures; see its outcome", "notification", id, "failures", MaxFailures)
	}
	return nil
}

// together reports whether the notifications of todo may be applied in
// lockstep (applyTogether): more than one, none relying on another's search
// of changes, none to be applied on its own.
func together(todo []prepared) bool {
	if len(todo) < 2 {
		return false
	}
	for _, p := range todo {
		if p.alone || p.readWith != uuid.Nil {
			return false
		}
	}
	return true
}

// applyTogether applies the notifications of todo at once (pg.Lockstep), in
// waves of those that have no key in common, in order: a batch of
// admissions takes a few round trips in all instead of a few each
// (docs/PERFORMANCE.md). It returns their outcomes, or an error if any of
// them failed; the caller then rolls all of them back and applies them one
// by one, under savepoints, which tells the one that failed apart.
func applyTogether(ctx context.Context, tx pgx.Tx, todo []prepared) ([]string, error) {
	outcomes := make([]string, len(todo))
	for start := 0; start < len(todo); {
		seen := map[string]bool{}
		end := start
	wave:
		for ; end < len(todo); end++ {
			for _, k := range todo[end].keys {
				if seen[k] {
					break wave
				}
			}
			for _, k := range todo[end].keys {
				seen[k] = true
			}
		}
		fns := make([]func(pgx.Tx, *pg.Writes) error, 0, end-start)
		for i := start; i < end; i++ {
			fns = append(fns, func(tx pgx.Tx, w *pg.Writes) error {
				outcome, err := todo[i].write(ctx, tx, w)
				if err != nil {
					return err
				}
				outcomes[i] = outcome
				return w.Flush(ctx, tx)
			})
		}
		if err := pg.Lockstep(ctx, tx, fns); err != nil {
			return nil, err
		}
		start = end
	}
	return outcomes, nil
}

// completeJobsOf queues the completion of the jobs, not yet fetched, of
// the notifications applied (done): their work is done, in this
// transaction. Why: in a burst, most notifications are applied in a batch
// that another job claimed before their own job runs, and each such job
// then cost a fetch, a claim (a statement and a connection for it) and a
// completion only to find its notification applied, half of what the pool
// served. A job River has fetched already is left to run: its claim finds
// nothing to do.
func completeJobsOf(w *pg.Writes, done map[uuid.UUID]bool) {
	if len(done) == 0 {
		return
	}
	ids := make([]string, 0, len(done))
	for id := range done {
		ids = append(ids, id.String())
	}
	w.Exec(`UPDATE river_job SET state = 'completed', finalized_at = now()
		WHERE state = 'available' AND queue = $1 AND kind = $2 AND args->>'notification_id' = ANY ($3)`,
		worker.QueueFHIR, ProcessArgs{}.Kind(), ids)
}

// release lets the notifications of a batch that could not be written be
// claimed again now rather than when the claims lapse (best effort: they
// lapse anyway).
func (s *Store) release(batch []storedNotification) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.db.Exec(ctx, `UPDATE fhir_notifications SET claimed_until = NULL WHERE id = ANY ($1) AND processed_at IS NULL`, claimedIDs(batch)) //nolint:errcheck
}

// DefaultWritingBatches is how many batches one instance applies at once
// while it sends pages (see Priority), unless Config.WritingBatches says
// otherwise. Measured on 2 cores at 500 notifications/s
// (docs/PERFORMANCE.md): with 16 applying, pages sent meanwhile reached the
// physician's stream at p99 416-616 ms; with 4, at p99 118-129 ms (16-30
// without the burst). Pages come first.
const DefaultWritingBatches = 4

func claimedIDs(batch []storedNotification) []uuid.UUID {
	ids := make([]uuid.UUID, len(batch))
	for i, n := range batch {
		ids[i] = n.ID
	}
	return ids
}

// write applies p's changes and records its state, returning its outcome;
// what it queues in w is the caller's to flush.
func (p prepared) write(ctx context.Context, tx pgx.Tx, w *pg.Writes) (string, error) {
	notes := slices.Clone(p.notes)
	for _, c := range p.changes {
		note, err := c(ctx, tx, w)
		var rej *Rejection
		if errors.As(err, &rej) {
			notes = append(notes, "skipped: "+rej.Diagnostics)
			continue
		}
		if err != nil {
			return "", err
		}
		notes = append(notes, note)
	}
	if p.state != nil {
		p.state(w)
	}
	return strings.Join(notes, "; "), nil
}

// prepare reads what notification n is about and turns each resource into
// a change. A resource callroom cannot use is noted, not retried forever.
func (s *Store) prepare(ctx context.Context, sub Subscription, n storedNotification, reads *batchReads) (prepared, error) {
	p := prepared{id: n.ID}
	var body []byte
	if n.Body != nil {
		var err error
		if body, err = s.sealer.Open(ctx, n.Body, notificationAAD(n.ID)); err != nil {
			return p, err
		}
	}
	var resources []json.RawMessage
	switch n.Flavor {
	case RestHookPayload, Medplum:
		resources = []json.RawMessage{body}
	case RestHookEmpty, Poll:
		// "Something changed": one search since the last read answers
		// every such notification of the batch; the first carries it.
		if reads.searchBy != uuid.Nil {
			p.readWith = reads.searchBy
			p.notes = append(p.notes, "changes read with notification "+reads.searchBy.String())
			return p, nil
		}
		var err error
		if resources, err = s.changedSince(ctx, sub); err != nil {
			return p, err
		}
		reads.searchBy = n.ID
		p.notes = append(p.notes, fmt.Sprintf("searched changes: %d", len(resources)))
		p.state = s.readUpTo(sub, reads.started)
	case Backport:
		if reads.lastEvent == nil {
			var last int64
			err := s.db.QueryRow(ctx, `SELECT last_event_number FROM fhir_subscription_state WHERE subscription = $1`, sub.Name).Scan(&last)
			if err != nil && !errors.Is(err, pgx.ErrNoRows) {
				return p, err
			}
			reads.lastEvent = &last
		}
		var gap bool
		var err error
		resources, gap, err = s.backportResources(ctx, body, *reads.lastEvent)
		if err != nil {
			return p, err
		}
		if gap {
			changed, err := s.changedSince(ctx, sub)
			if err != nil {
				return p, err
			}
			resources = append(resources, changed...)
			p.notes = append(p.notes, fmt.Sprintf("gap in event numbers: re-read %d", len(changed)))
			s.log.Warn("fhir subscription missed events; re-read changes", "subscription", sub.Name)
		}
		last := int64(0)
		if n.EventNumber != nil {
			last = *n.EventNumber
		}
		*reads.lastEvent = max(*reads.lastEvent, last)
		readUpTo := s.readUpTo(sub, reads.started)
		p.state = func(w *pg.Writes) {
			if gap {
				readUpTo(w)
			}
			w.Exec(`INSERT INTO fhir_subscription_state (subscription, last_event_number) VALUES ($1, $2)
				ON CONFLICT (subscription) DO UPDATE SET last_event_number = greatest(fhir_subscription_state.last_event_number, $2), updated_at = now()`,
				sub.Name, last)
		}
	}
	for _, raw := range resources {
		c, keys, err := s.prepareResource(ctx, reads.resolver, raw, n.Deleted)
		var rej *Rejection
		if errors.As(err, &rej) {
			p.notes = append(p.notes, "skipped: "+rej.Diagnostics)
			continue
		}
		if err != nil {
			return p, err
		}
		p.changes = append(p.changes, c)
		p.keys = append(p.keys, keys...)
		p.alone = p.alone || keys == nil
	}
	return p, nil
}

// sweepAfter is how long a notification may wait unclaimed before the tick
// queues a job for it. Normally its own job claims it within milliseconds;
// this is the net under the rare paths where no job is left to (a batch
// whose transaction failed released more than its retried job reclaims).
const sweepAfter = 10 * time.Second

// sweep queues a job for the oldest notification of each subscription that
// has waited unclaimed longer than sweepAfter; that job claims it with the
// next oldest. A job too many does no harm: it finds nothing to claim.
func (s *Store) sweep(ctx context.Context) error {
	rows, _ := s.db.Query(ctx, `SELECT DISTINCT ON (subscription) id FROM fhir_notifications
		WHERE processed_at IS NULL AND (claimed_until IS NULL OR claimed_until < now()) AND received_at < now() - $1::interval
		ORDER BY subscription, received_at`, sweepAfter)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil || len(ids) == 0 {
		return err
	}
	params := make([]river.InsertManyParams, len(ids))
	for i, id := range ids {
		params[i] = river.InsertManyParams{Args: ProcessArgs{NotificationID: id}}
	}
	return pg.InTx(ctx, s.db, func(tx pgx.Tx) error {
		_, err := worker.InsertManyTx(ctx, s.river, tx, params)
		return err
	})
}
