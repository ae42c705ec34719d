package escalation

import (
	"context"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/callroom/callroom/events"
	"github.com/callroom/callroom/internal/pg"
	"github.com/callroom/callroom/notify"
	"github.com/callroom/callroom/worker"
)

// Store keeps services, policies and pages, and runs their escalation.
type Store struct {
	db    *pgxpool.Pool
	river *worker.Client
	log   *slog.Logger

	// PublicURL builds the link in notifications.
	PublicURL string
	// Email sends email notifications; nil means email is not configured and
	// email notifications fail with that reason (escalation goes on).
	Email *notify.EmailSender
	// ReplyAddress, when set, gives each notification email a Reply-To the
	// mail gateway recognises, so the clinician can acknowledge by replying
	// ACK (mailgateway.ReplyAddress; set when the gateway is configured).
	ReplyAddress func(notificationID uuid.UUID) string
	// WebhookTimeout bounds each webhook attempt.
	WebhookTimeout time.Duration
	// DeliverAttempts and DeliverBackoff override deliverAttempts and
	// deliverBackoff when set (non-zero, non-empty): tests use them to see a
	// notification fail for good in a second instead of a minute. Set them
	// before the instance starts serving.
	DeliverAttempts int
	DeliverBackoff  []time.Duration
	// Sealer encrypts page text at rest; required to create pages.
	Sealer Sealer
	// FilePage, when set, files a page about a patient in that patient's
	// thread, inside the page's own transaction (the inbox does it).
	FilePage func(ctx context.Context, tx pgx.Tx, p FiledPage) error
	// ThreadMember, when set, reports whether user is a member of the thread
	// a page was filed in: they may acknowledge it from the thread.
	ThreadMember func(ctx context.Context, q pg.Querier, pageID, userID uuid.UUID) (bool, error)
	// PageSettled, when set, is called in the transaction of every change
	// of a page that is acknowledged, resolved or unanswered (possibly more
	// than once per status): package fhir queues the page's summary for the
	// patient's record.
	PageSettled func(ctx context.Context, tx pgx.Tx, p Page) error
	// Observe, when set, hears about pages, steps and notifications (metrics).
	Observe Observer
	// Paging, when set, is told as a page is sent (Create, and each later
	// step a job fires) and the func it returns when that is done: package
	// fhir holds the EHR's batches back meanwhile (fhir.Priority), so a
	// burst of notifications does not take the instance from paging. It
	// must be cheap: it runs on every page.
	Paging func() (done func())
	// ThreadMembers, when set, returns the current members of the thread a
	// page was filed in: its page.updated events go to them too, so the
	// care team sees the page change from the thread.
	ThreadMembers func(ctx context.Context, q pg.Querier, pageID uuid.UUID) ([]uuid.UUID, error)
	// now is the clock; tests may replace it.
	now func() time.Time
	// firstStepFault, when set, fails the first step Create fires inline,
	// so tests can see the page sent through the escalation queue instead.
	firstStepFault error
	// pages sends pages in groups when many are sent at once (page_group.go).
	pages *pg.Group[*events.Deferred]
}

// NewStore returns a Store. SetRiver must be called before pages are created:
// the River client is built after the workers, which need the Store.
func NewStore(db *pgxpool.Pool, log *slog.Logger) *Store {
	s := &Store{db: db, log: log, now: time.Now, WebhookTimeout: 10 * time.Second,
		pages: pg.NewGroup(db, pageGroupSize, pageGroups, groupPagesFrom, events.QueueDeferred)}
	s.pages.Failed = func(n int, err error) {
		s.log.Warn("a group of pages could not commit; each is sent on its own", "pages", n, "error", err)
	}
	return s
}

// paging calls Paging, if set.
func (s *Store) paging() (done func()) {
	if s.Paging == nil {
		return func() {}
	}
	return s.Paging()
}

func (s *Store) deliverAttempts() int {
	if s.DeliverAttempts > 0 {
		return s.DeliverAttempts
	}
	return deliverAttempts
}

func (s *Store) deliverBackoff() []time.Duration {
	if len(s.DeliverBackoff) > 0 {
		return s.DeliverBackoff
	}
	return deliverBackoff
}

// SetRiver gives the store the client it inserts and cancels jobs with.
func (s *Store) SetRiver(c *worker.Client) { s.river = c }

// FiledPage is what the patient's thread is told about a new page.
type FiledPage struct {
	PageID                   uuid.UUID
	PatientRef, EncounterRef string
	Priority, Summary        string
	SenderID                 uuid.UUID
	RecipientIDs             []uuid.UUID
}
