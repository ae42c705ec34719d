package fhir

import (
	"context"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/callroom/callroom/inbox"
	"github.com/callroom/callroom/internal/pg"
	"github.com/callroom/callroom/worker"
)

// Sealer encrypts notification bodies at rest (package keys' *Keyring).
type Sealer interface {
	Seal(ctx context.Context, plaintext, aad []byte) (blob []byte, keyID uuid.UUID, err error)
	Open(ctx context.Context, blob, aad []byte) ([]byte, error)
}

// Store is callroom's side of the EHR connection: it accepts notifications,
// processes them into patient threads, and talks to the EHR.
type Store struct {
	db     *pgxpool.Pool
	cfg    Config
	client *Client
	inbox  *inbox.Store
	sealer Sealer
	river  *worker.Client
	log    *slog.Logger
	now    func() time.Time
	// RetryBase is a write-back's first retry delay, doubled each attempt
	// up to 30 minutes (default 5 s; tests shorten it before serving).
	RetryBase time.Duration
	// Observe, when set before serving, counts notifications received and
	// processed and write-backs sent (package metrics).
	Observe Observer
	// priority holds batches back while this instance sends pages.
	priority *Priority
	// together applies a batch's notifications in lockstep when it can
	// (applyTogether); tests turn it off to compare.
	together bool
	// accepts commits the notifications accepted at once together
	// (accept.go).
	accepts *pg.Group[struct{}]
}

// NewStore returns a Store for cfg (checked by the caller with cfg.Check).
func NewStore(db *pgxpool.Pool, cfg Config, in *inbox.Store, sealer Sealer, log *slog.Logger) *Store {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	paging, idle := cfg.writingBatches()
	s := &Store{db: db, cfg: cfg, client: NewClient(cfg), inbox: in, sealer: sealer, log: log, now: time.Now,
		priority: NewPriority(paging, idle, PagingWindow), together: true,
		accepts: pg.NewGroup[struct{}](db, acceptGroupSize, 1, acceptInGroupsFrom, nil)}
	s.accepts.Failed = func(n int, err error) {
		log.Warn("a group of EHR notifications could not commit; each is recorded on its own", "notifications", n, "error", err)
	}
	return s
}

// SetRiver gives the store the client it inserts jobs with (built after the
// workers, which need the store).
func (s *Store) SetRiver(c *worker.Client) { s.river = c }

// Client is the store's EHR client.
func (s *Store) Client() *Client { return s.client }

// Unmatched is a practitioner the EHR named that matched no user.
type Unmatched struct {
	PractitionerRef string    `json:"practitioner_ref" db:"practitioner_ref"`
	NPI             string    `json:"npi,omitempty" db:"npi"`
	HasEmail        bool      `json:"has_email" db:"has_email"`
	FirstSeenAt     time.Time `json:"first_seen_at" db:"first_seen_at"`
	LastSeenAt      time.Time `json:"last_seen_at" db:"last_seen_at"`
}

// Unmatched lists practitioners that matched no user, most recent first,
// for an administrator to create or correct accounts (NPI, email).
func (s *Store) Unmatched(ctx context.Context) ([]Unmatched, error) {
	rows, _ := s.db.Query(ctx, `SELECT practitioner_ref, npi, has_email, first_seen_at, last_seen_at
		FROM fhir_unmatched_practitioners ORDER BY last_seen_at DESC, practitioner_ref LIMIT 1000`)
	return pgx.CollectRows(rows, pgx.RowToStructByName[Unmatched])
}
