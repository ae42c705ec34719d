// Package server assembles callroom from its parts: the database pool, the
// domain stores, the River client with every worker registered, and the HTTP
// API. The command and end-to-end tests build the same thing through it.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/auth"
	"github.com/callroom/callroom/escalation"
	"github.com/callroom/callroom/events"
	"github.com/callroom/callroom/fhir"
	"github.com/callroom/callroom/httpapi"
	"github.com/callroom/callroom/inbox"
	"github.com/callroom/callroom/keys"
	"github.com/callroom/callroom/mailgateway"
	"github.com/callroom/callroom/metrics"
	"github.com/callroom/callroom/migrations"
	"github.com/callroom/callroom/notify"
	"github.com/callroom/callroom/oncall"
	"github.com/callroom/callroom/patient"
	"github.com/callroom/callroom/ratelimit"
	"github.com/callroom/callroom/web"
	"github.com/callroom/callroom/worker"
)

// Config is what a running callroom needs.
type Config struct {
	Pool            *pgxpool.Pool
	Log             *slog.Logger
	PublicURL       string
	SessionIdle     time.Duration
	SessionLifetime time.Duration
	EscalationPoll  time.Duration
	// MasterKeys wrap the data keys that encrypt PHI at rest.
	MasterKeys *keys.MasterKeys
	// SMART enables the patient-chart view's EHR launch (the EHR must also
	// be in FrameAncestors to show it in a frame).
	SMART *web.SMART
	// MetricsListener, when set, serves /metrics there instead of on the API's address.
	MetricsListener net.Listener
	// Outbound email for notifications; empty SMTPRelay disables email.
	SMTPRelay, SMTPFrom, SMTPUsername, SMTPPassword, SMTPHelo string
	// FHIR connects to the EHR; nil: no EHR.
	FHIR *fhir.Config
	// Mail turns on the inbound SMTP gateway (page by email, acknowledge by
	// reply) on Mail.Addr; nil leaves it off.
	Mail *mailgateway.Config
	// TLS says callroom terminates TLS itself (HSTS is sent then, and when
	// PublicURL is https). FrameAncestors is the CSP frame-ancestors list.
	TLS            bool
	FrameAncestors string
	// Single sign-on; empty OIDCIssuer disables it. PasswordLoginOff leaves
	// single sign-on as the only way in.
	OIDCIssuer, OIDCClientID, OIDCClientSecret string
	PasswordLoginOff                           bool
	// Limits overrides httpapi.DefaultLimits.
	Limits *httpapi.Limits
	// TrustedProxies are load balancers whose X-Forwarded-For is believed.
	TrustedProxies []netip.Prefix
}

// Server is one callroom instance.
type Server struct {
	cfg    Config
	Auth   *auth.Store
	OnCall *oncall.Store
	Keys   *keys.Keyring
	Events *events.Hub
	// Deliveries records what the event streams delivered (Events.OnDelivered).
	Deliveries *events.Deliveries
	Pages      *escalation.Store
	Contacts   *notify.Store
	Inbox      *inbox.Store
	FHIR       *fhir.Store // nil without an EHR
	River      *worker.Client
	API        *httpapi.Server
	// Mail is the inbound SMTP gateway, nil unless Config.Mail is set.
	Mail *mailgateway.Server
	// MailListener, when set before Serve, is where the gateway listens
	// instead of Config.Mail.Addr (tests pass 127.0.0.1:0).
	MailListener net.Listener
	Metrics      *metrics.Metrics
}

// New wires an instance. It refuses a database whose schema is older than
// this binary: run 'callroom migrate' first.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if err := checkSchema(ctx, cfg.Pool); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, Metrics: metrics.New()}
	s.Metrics.WatchQueues(cfg.Pool)
	if cfg.MasterKeys == nil {
		return nil, errors.New("no master key: set CALLROOM_MASTER_KEY_FILE or CALLROOM_MASTER_KEY")
	}
	keyring, err := keys.NewKeyring(ctx, cfg.Pool, cfg.MasterKeys, keys.WithLogger(cfg.Log.With("component", "keys")))
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	s.Keys = keyring
	s.Auth = auth.NewStore(cfg.Pool)
	if cfg.SessionIdle > 0 {
		s.Auth.SessionIdle = cfg.SessionIdle
	}
	if cfg.SessionLifetime > 0 {
		s.Auth.SessionLifetime = cfg.SessionLifetime
	}
	s.Auth.Sealer = s.Keys
	s.OnCall = oncall.NewStore(cfg.Pool)
	s.Events = events.NewHub(cfg.Pool, cfg.Log)
	// API tokens are kept in memory only while the hub hears every change
	// to them (auth.CredentialsChannel).
	s.Events.Watch(events.Watcher{Channel: auth.CredentialsChannel,
		Notified: s.Auth.CredentialsChanged, Listening: s.Auth.CredentialsListening})
	s.Contacts = notify.NewStore(cfg.Pool)
	s.Pages = escalation.NewStore(cfg.Pool, cfg.Log.With("component", "escalation"))
	s.Pages.PublicURL = cfg.PublicURL
	s.Pages.Sealer = s.Keys
	s.Inbox = inbox.NewStore(cfg.Pool, s.Keys, cfg.Log.With("component", "inbox"))
	// A page about a patient is filed in that patient's thread, in the page's transaction.
	s.Pages.FilePage = func(ctx context.Context, tx pgx.Tx, p escalation.FiledPage) error {
		return s.Inbox.PostPage(ctx, tx, inbox.PageInfo{PageID: p.PageID, PatientRef: p.PatientRef, EncounterRef: p.EncounterRef,
			Priority: p.Priority, Summary: p.Summary, SenderID: p.SenderID, RecipientIDs: p.RecipientIDs})
	}
	s.Pages.ThreadMember = inbox.PageThreadMember
	s.Pages.Observe = s.Metrics
	s.Pages.ThreadMembers = inbox.PageThreadMembers
	if cfg.SMTPRelay != "" {
		sender, err := notify.NewEmailSender(notify.EmailConfig{Addr: cfg.SMTPRelay, From: cfg.SMTPFrom,
			Username: cfg.SMTPUsername, Password: cfg.SMTPPassword, HeloName: cfg.SMTPHelo})
		if err != nil {
			return nil, fmt.Errorf("email relay: %w", err)
		}
		s.Pages.Email = sender
	}
	if cfg.Mail != nil {
		if err := s.newMailGateway(*cfg.Mail); err != nil {
			return nil, err
		}
	}
	// In-app notifications and messages are delivered when a live stream
	// writes them; the deliveries are recorded in batches.
	s.Deliveries = events.NewDeliveries(s.recordDeliveries, cfg.Log)
	s.Events.OnDelivered = func(ctx context.Context, e events.Event) {
		if e.Type == escalation.EventPageNotify || e.Type == inbox.EventMessageCreated {
			s.Deliveries.Add(ctx, e)
		}
	}

	workers := river.NewWorkers()
	river.AddWorker(workers, &auth.SweepSessionsWorker{DB: cfg.Pool})
	river.AddWorker(workers, &events.PurgeWorker{DB: cfg.Pool})
	river.AddWorker(workers, &escalation.StepWorker{Store: s.Pages})
	river.AddWorker(workers, &escalation.DeliverWorker{Store: s.Pages})
	river.AddWorker(workers, &escalation.SweepWorker{DB: cfg.Pool})
	river.AddWorker(workers, &inbox.PurgeWorker{Store: s.Inbox})
	river.AddWorker(workers, &ratelimit.SweepWorker{DB: cfg.Pool})
	river.AddWorker(workers, &audit.SealWorker{DB: cfg.Pool})
	if cfg.FHIR != nil {
		if err := cfg.FHIR.Check(); err != nil {
			return nil, err
		}
		if cfg.FHIR.Endpoint == "" {
			cfg.FHIR.Endpoint = cfg.PublicURL
		}
		s.FHIR = fhir.NewStore(cfg.Pool, *cfg.FHIR, s.Inbox, s.Keys, cfg.Log.With("component", "fhir"))
		s.FHIR.Observe = s.Metrics
		s.Metrics.WatchFHIR(cfg.Pool)
		river.AddWorker(workers, &fhir.ProcessWorker{Store: s.FHIR})
		river.AddWorker(workers, &fhir.WriteBackWorker{Store: s.FHIR, Pages: s.Pages})
		river.AddWorker(workers, &fhir.TickWorker{Store: s.FHIR})
		river.AddWorker(workers, &fhir.DigestWorker{Store: s.FHIR})
		river.AddWorker(workers, &fhir.LinkPatientWorker{Store: s.FHIR})
		s.Pages.PageSettled = s.FHIR.PageSettled
		// Pages first: the EHR's batches wait while this instance pages.
		s.Pages.Paging = s.FHIR.Paging
	}
	periodic := []*river.PeriodicJob{auth.SweepSessionsPeriodic(), events.PurgePeriodic(), escalation.SweepPeriodic(), inbox.PurgePeriodic(),
		ratelimit.SweepPeriodic(), audit.SealPeriodic()}
	if s.FHIR != nil {
		periodic = append(periodic, fhir.TickPeriodic(*cfg.FHIR), fhir.DigestPeriodic())
	}
	client, err := worker.New(worker.Config{
		Pool: cfg.Pool, Log: cfg.Log.With("component", "river"), Workers: workers,
		Periodic:       periodic,
		EscalationPoll: cfg.EscalationPoll,
	})
	if err != nil {
		return nil, fmt.Errorf("river: %w", err)
	}
	s.River = client
	s.Pages.SetRiver(client)
	if s.FHIR != nil {
		s.FHIR.SetRiver(client)
	}

	smart, err := launchConfig(cfg, s.FHIR)
	if err != nil {
		return nil, err
	}
	s.API = &httpapi.Server{
		Log: cfg.Log, DB: cfg.Pool, Auth: s.Auth, OnCall: s.OnCall, Events: s.Events,
		Pages: s.Pages, Contacts: s.Contacts, Inbox: s.Inbox, Patients: patient.NewStore(cfg.Pool), FHIR: s.FHIR,
		PublicURL: cfg.PublicURL, SecureCookies: strings.HasPrefix(cfg.PublicURL, "https://"),
		Ready: s.ready, Metrics: s.Metrics, MetricsElsewhere: cfg.MetricsListener != nil,
		HSTS:           cfg.TLS || strings.HasPrefix(cfg.PublicURL, "https://"),
		FrameAncestors: cfg.FrameAncestors, LocalPasswordsOff: cfg.PasswordLoginOff, TrustedProxies: cfg.TrustedProxies,
		Limiter: ratelimit.New(cfg.Pool), Limits: httpapi.DefaultLimits,
		Web: web.Handler(web.Options{
			SessionIdle: s.Auth.SessionIdle, FrameAncestors: cfg.FrameAncestors, SMART: smart,
			Auth: s.Auth, Keys: s.Keys, Log: cfg.Log.With("component", "web"), SessionCookie: httpapi.SessionCookie,
			SecureCookies: strings.HasPrefix(cfg.PublicURL, "https://"), PublicURL: cfg.PublicURL,
		}),
	}
	if cfg.Limits != nil {
		s.API.Limits = *cfg.Limits
	}
	if cfg.OIDCIssuer != "" {
		s.API.OIDC = &httpapi.OIDCConfig{Issuer: cfg.OIDCIssuer, ClientID: cfg.OIDCClientID, ClientSecret: cfg.OIDCClientSecret,
			RedirectURL: strings.TrimSuffix(cfg.PublicURL, "/") + "/auth/oidc/callback"}
	}
	return s, nil
}

// recordDeliveries records a batch of deliveries from the event streams:
// in-app page notifications and messages, each kind with one statement.
func (s *Server) recordDeliveries(ctx context.Context, batch []events.Delivery) error {
	var pages []escalation.InAppDelivery
	var messages []inbox.Delivery
	for _, d := range batch {
		var data struct {
			NotificationID uuid.UUID `json:"notification_id"`
			MessageID      uuid.UUID `json:"message_id"`
		}
		if json.Unmarshal(d.Data, &data) != nil {
			continue
		}
		switch {
		case d.Type == escalation.EventPageNotify && data.NotificationID != uuid.Nil:
			pages = append(pages, escalation.InAppDelivery{UserID: d.UserID, NotificationID: data.NotificationID})
		case d.Type == inbox.EventMessageCreated && data.MessageID != uuid.Nil:
			messages = append(messages, inbox.Delivery{UserID: d.UserID, MessageID: data.MessageID, At: d.DeliveredAt})
		}
	}
	return errors.Join(s.Pages.Delivered(ctx, pages...), s.Inbox.Delivered(ctx, messages...))
}

func checkSchema(ctx context.Context, pool *pgxpool.Pool) error {
	var v int
	err := pool.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM callroom_migrations").Scan(&v)
	if err != nil {
		return fmt.Errorf("reading the schema version (has 'callroom migrate' run?): %w", err)
	}
	if v < migrations.Version() {
		return fmt.Errorf("the database schema is at version %d, this binary needs %d: run 'callroom migrate'", v, migrations.Version())
	}
	return nil
}

// ready answers /readyz: the database answers and River's tables are there.
func (s *Server) ready(ctx context.Context) error {
	var n int
	return s.cfg.Pool.QueryRow(ctx, "SELECT count(*) FROM river_queue").Scan(&n)
}

// Handler is the HTTP surface.
func (s *Server) Handler() http.Handler { return s.API.Handler() }

// Serve runs River and the HTTP server on ln until ctx ends, then drains:
// in-flight requests finish (up to drain), then River stops fetching and
// waits for running jobs.
func (s *Server) Serve(ctx context.Context, ln net.Listener, drain time.Duration) error {
	if err := s.River.Start(ctx); err != nil {
		return fmt.Errorf("start river: %w", err)
	}
	if s.Mail != nil {
		stopMail, err := s.serveMail(ctx, drain)
		if err != nil {
			return err
		}
		defer stopMail()
	}
	// Deliveries run until the streams have ended (the hub stopped, the
	// HTTP server shut down: the defers below run in reverse order), then
	// record what is still pending.
	deliveriesCtx, stopDeliveries := context.WithCancel(context.WithoutCancel(ctx))
	deliveriesDone := make(chan struct{})
	go func() {
		defer close(deliveriesDone)
		s.Deliveries.Run(deliveriesCtx)
	}()
	defer func() { stopDeliveries(); <-deliveriesDone }()
	hubCtx, stopHub := context.WithCancel(context.WithoutCancel(ctx))
	hubDone := make(chan struct{})
	go func() {
		defer close(hubDone)
		if err := s.Events.Run(hubCtx); err != nil && !errors.Is(err, context.Canceled) {
			s.cfg.Log.Error("event hub stopped", "err", err.Error())
		}
	}()
	defer func() { stopHub(); <-hubDone }()
	failed, stopFailed := s.River.Subscribe(river.EventKindJobFailed)
	defer stopFailed()
	go func() {
		for e := range failed {
			s.Metrics.JobFailed(e.Job.Kind)
		}
	}()
	if s.cfg.MetricsListener != nil {
		msrv := &http.Server{Handler: s.Metrics.Handler(), ReadHeaderTimeout: 10 * time.Second}
		go msrv.Serve(s.cfg.MetricsListener) //nolint:errcheck // ends with Close below
		defer msrv.Close()
	}
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.cfg.Log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	// Shutdown does not end open event streams; stopping the hub does, so
	// clients reconnect (with Last-Event-ID) to another instance at once.
	srv.RegisterOnShutdown(stopHub)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	s.cfg.Log.Info("shutting down", "drain", drain.String())
	sctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		s.cfg.Log.Warn("http shutdown", "err", err.Error())
	}
	if err := s.River.Stop(sctx); err != nil {
		s.cfg.Log.Warn("river stop", "err", err.Error())
	}
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return serveErr
	}
	return nil
}

// launchConfig is the patient-chart view's EHR launch: the EHR connection's
// ("launch" in CALLROOM_FHIR_CONFIG), which matches clinicians and keeps
// threads through that connection, or else cfg.SMART (CALLROOM_SMART_ISSUER)
// alone. Both naming different EHRs is a configuration mistake.
func launchConfig(cfg Config, ehr *fhir.Store) (*web.SMART, error) {
	if ehr == nil || cfg.FHIR.Launch == nil {
		return cfg.SMART, nil
	}
	if cfg.SMART != nil && strings.TrimRight(cfg.SMART.Issuer, "/") != ehr.BaseURL() {
		return nil, fmt.Errorf("the EHR launch is configured twice: CALLROOM_SMART_ISSUER %s is not the FHIR connection's base_url %s", cfg.SMART.Issuer, ehr.BaseURL())
	}
	l := cfg.FHIR.Launch
	scope := l.Scope
	if scope == "" {
		scope = fhir.DefaultLaunchScope
	}
	return &web.SMART{Issuer: ehr.BaseURL(), ClientID: l.ClientID, ClientSecret: l.ClientSecret, Scope: scope, EHR: ehr}, nil
}
