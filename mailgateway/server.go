package mailgateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/google/uuid"
	"golang.org/x/net/netutil"

	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/auth"
	"github.com/callroom/callroom/escalation"
	"github.com/callroom/callroom/internal/pg"
)

// Pages is what the gateway needs of escalation.Store.
type Pages interface {
	ServiceByEmailAlias(ctx context.Context, alias string) (escalation.Service, error)
	Create(ctx context.Context, by audit.Actor, in escalation.NewPage) (escalation.Page, bool, error)
	Acknowledge(ctx context.Context, who auth.Principal, id uuid.UUID) (escalation.Page, error)
	Resolve(ctx context.Context, who auth.Principal, id uuid.UUID) (escalation.Page, error)
	Escalate(ctx context.Context, who auth.Principal, id uuid.UUID, fromRound, fromStep *int) (escalation.Page, error)
}

// BatchCreator is a page store that creates several pages in one
// transaction, all or none. When Pages implements it, a message to several
// services uses it, so a failure leaves no page behind.
type BatchCreator interface {
	CreateBatch(ctx context.Context, by audit.Actor, in []escalation.NewPage) (pages []escalation.Page, created []bool, err error)
}

// Users is what the gateway needs of auth.Store: the person a reply acts as.
type Users interface {
	User(ctx context.Context, id uuid.UUID) (auth.User, error)
}

// DB is the database the gateway reads addresses from and writes its audit
// entries to; a *pgxpool.Pool.
type DB interface {
	pg.Querier
	pg.Beginner
}

// Deps are the parts of callroom the gateway works with.
type Deps struct {
	Pages Pages // *escalation.Store
	Users Users // *auth.Store
	DB    DB
	Log   *slog.Logger
}

// Server is the inbound SMTP gateway.
type Server struct {
	cfg   Config
	pages Pages
	users Users
	db    DB
	dir   directory
	log   *slog.Logger
	smtp  *smtp.Server
	creds *credentials

	// OnReplyText receives the text of a reply that is not a command, for
	// the page's thread. Nil drops it (with a log line that carries no
	// text): the timeline must never hold it, since it may be PHI.
	OnReplyText func(ctx context.Context, pageID, userID uuid.UUID, text string) error
	// SendMail sends the short answers to replies that could not act ("the
	// page was already acknowledged"). Nil skips them. Set both hooks
	// before Serve.
	SendMail func(ctx context.Context, to, subject, body string) error

	// base ends when the server is closed; message work derives from it.
	base   context.Context
	cancel context.CancelFunc
	bg     sync.WaitGroup // answers being sent
	now    func() time.Time
}

// New checks cfg and builds a gateway; Serve or Run starts it.
func New(cfg Config, deps Deps) (*Server, error) {
	cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if deps.Pages == nil || deps.Users == nil || deps.DB == nil {
		return nil, errors.New("mailgateway: Pages, Users and DB are required")
	}
	log := deps.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	creds, err := newCredentials(cfg.Credentials)
	if err != nil {
		return nil, err
	}
	base, cancel := context.WithCancel(context.Background())
	s := &Server{cfg: cfg, pages: deps.Pages, users: deps.Users, db: deps.DB, dir: directory{db: deps.DB},
		log: log, creds: creds, base: base, cancel: cancel, now: time.Now}

	srv := smtp.NewServer(smtp.BackendFunc(s.newSession))
	srv.Domain = cfg.Hostname
	srv.TLSConfig = cfg.TLSConfig
	srv.AllowInsecureAuth = false // AUTH is neither offered nor accepted before STARTTLS
	srv.MaxMessageBytes = cfg.MaxMessageBytes
	srv.MaxRecipients = cfg.MaxRecipients
	srv.ReadTimeout = cfg.ReadTimeout
	srv.WriteTimeout = cfg.WriteTimeout
	// RFC 5321 allows 1000-octet lines, but HTML mail from real systems is
	// often longer; the message size bounds the memory either way.
	srv.MaxLineLength = 16 << 10
	srv.EnableSMTPUTF8 = true
	srv.ErrorLog = slog.NewLogLogger(log.Handler(), slog.LevelWarn)
	s.smtp = srv
	return s, nil
}

// Serve accepts connections on ln until Close or Shutdown. At most
// MaxConnections are served at once; more wait to be accepted.
func (s *Server) Serve(ln net.Listener) error {
	s.log.Info("mail gateway listening", "addr", ln.Addr().String(), "domains", s.cfg.Domains,
		"starttls", s.cfg.TLSConfig != nil, "replies", len(s.cfg.ReplySecret) > 0)
	err := s.smtp.Serve(netutil.LimitListener(ln, s.cfg.MaxConnections))
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// Run serves ln until ctx ends, then shuts down, giving open sessions up to
// drain to finish.
func (s *Server) Run(ctx context.Context, ln net.Listener, drain time.Duration) error {
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(ln) }()
	select {
	case err := <-errc:
		s.Close()
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	err := s.Shutdown(sctx)
	<-errc
	return err
}

// Shutdown stops accepting, lets sessions in progress finish until ctx ends,
// then closes whatever is left and waits for answers being sent.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.smtp.Shutdown(ctx)
	if err != nil {
		s.smtp.Close()
	}
	s.cancel()
	done := make(chan struct{})
	go func() { s.bg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	if errors.Is(err, smtp.ErrServerClosed) {
		return nil
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("mailgateway: sessions still open at shutdown were closed: %w", err)
	}
	return err
}

// Close stops at once: open sessions are dropped and their messages not
// accepted (the senders retry).
func (s *Server) Close() error {
	err := s.smtp.Close()
	s.cancel()
	s.bg.Wait()
	if errors.Is(err, smtp.ErrServerClosed) {
		return nil
	}
	return err
}
