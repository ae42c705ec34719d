// Package benchutil is what callroom's system benchmarks share: a whole
// instance started in-process on its own database (like internal/apitest, but
// quiet and with production's pool size and poll interval), an HTTP client
// for it that reports errors instead of failing from a goroutine, a reader
// for the server-sent event stream, latency percentiles, and the accounting
// that explains a result (SQL wall time by statement, CPU split between Go
// and PostgreSQL, pool waits).
//
// The benchmarks that use it need a PostgreSQL server; `make bench` points
// CALLROOM_TEST_DATABASE_URL at the durable (fsync on) bench cluster. Every
// connection it opens is to 127.0.0.1.
package benchutil

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/auth"
	"github.com/callroom/callroom/fhir"
	"github.com/callroom/callroom/internal/pg"
	"github.com/callroom/callroom/internal/pgtest"
	"github.com/callroom/callroom/internal/server"
	"github.com/callroom/callroom/keys"
	"github.com/callroom/callroom/mailgateway"
	"github.com/callroom/callroom/ratelimit"
)

// masterKey encrypts the instance's PHI at rest; a fixed, public test key.
const masterKey = "bench:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

// Options adjust an instance. The zero value is production's defaults.
type Options struct {
	// PoolSize is the server's database pool (production default 20,
	// CALLROOM_DB_MAX_CONNS). When zero, CALLROOM_BENCH_POOL_SIZE can set it,
	// to try another size without editing the benchmarks.
	PoolSize int32
	// EscalationPoll is the escalation queue's poll interval (production
	// default 50 ms, CALLROOM_ESCALATION_POLL).
	EscalationPoll time.Duration
	// TraceSQL records the wall time of every statement the server runs (see
	// SQLStats). It costs a mutex and a map update per statement.
	TraceSQL bool
	// Mail, when set, runs the inbound SMTP gateway on 127.0.0.1:0
	// (Instance.MailAddr).
	Mail *mailgateway.Config
	// FHIR connects the instance to an EHR (server.Config.FHIR).
	FHIR *fhir.Config
}

// Instance is a running callroom on a fresh database.
type Instance struct {
	TB     testing.TB
	DB     *pgtest.DB    // the database; DB.Pool is a small pool for setup SQL
	Pool   *pgxpool.Pool // the server's own pool
	Server *server.Server
	URL    string
	SQL    *SQLStats // nil unless Options.TraceSQL
	// MailAddr is where the SMTP gateway listens when Options.Mail is set.
	MailAddr string
}

// Start runs an instance until tb ends. It logs at Info (every request, as
// production does) into io.Discard, so the cost of logging is measured but
// the output does not pile up in memory.
func Start(tb testing.TB, o Options) *Instance {
	tb.Helper()
	if o.PoolSize <= 0 {
		o.PoolSize = 20
		if v, err := strconv.Atoi(os.Getenv("CALLROOM_BENCH_POOL_SIZE")); err == nil && v >= 2 {
			o.PoolSize = int32(v)
		}
	}
	if o.EscalationPoll <= 0 {
		o.EscalationPoll = 50 * time.Millisecond
	}
	db := pgtest.NewWithPoolSize(tb, 4)
	cfg, err := pgxpool.ParseConfig(db.URL)
	if err != nil {
		tb.Fatal(err)
	}
	cfg.MaxConns = o.PoolSize
	cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	cfg.ConnConfig.RuntimeParams["application_name"] = "callroom"
	pg.Configure(cfg)
	in := &Instance{TB: tb, DB: db}
	if o.TraceSQL {
		in.SQL = newSQLStats()
		cfg.ConnConfig.Tracer = in.SQL
	}
	ctx, cancel := context.WithCancel(context.Background())
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		cancel()
		tb.Fatal(err)
	}
	in.Pool = pool
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		cancel()
		tb.Fatal(err)
	}
	in.URL = "http://" + ln.Addr().String()
	log := slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
	mk, err := keys.LoadMasterKeys("", masterKey)
	if err != nil {
		cancel()
		tb.Fatal(err)
	}
	srv, err := server.New(ctx, server.Config{Pool: pool, Log: log, PublicURL: in.URL, EscalationPoll: o.EscalationPoll,
		MasterKeys: mk, Mail: o.Mail, FHIR: o.FHIR})
	if err != nil {
		cancel()
		tb.Fatal(err)
	}
	in.Server = srv
	// A benchmark's nurse sends far more pages than the production limit
	// per caller (CALLROOM_PAGE_RATE, 120/min); its cost is measured by
	// ratelimit's own benchmark.
	srv.API.Limits.PagesPerCaller = ratelimit.Rule{}
	if o.Mail != nil {
		mln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			cancel()
			tb.Fatal(err)
		}
		srv.MailListener, in.MailAddr = mln, mln.Addr().String()
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln, 5*time.Second) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("serve: %v", err)
		}
		pool.Close()
	})
	in.waitLeader()
	describeOnce.Do(func() { in.describe() })
	return in
}

var describeOnce sync.Once

// describe logs the PostgreSQL server's version and durability settings
// once per test binary, and warns when fsync is off: on such a cluster the
// paging figures do not mean what docs/PERFORMANCE.md says they mean.
func (in *Instance) describe() {
	var version, fsync, syncCommit string
	err := in.DB.Pool.QueryRow(context.Background(),
		`SELECT current_setting('server_version'), current_setting('fsync'), current_setting('synchronous_commit')`).
		Scan(&version, &fsync, &syncCommit)
	if err != nil {
		in.TB.Logf("reading the server's settings: %v", err)
		return
	}
	in.TB.Logf("PostgreSQL %s, fsync=%s, synchronous_commit=%s", version, fsync, syncCommit)
	if fsync != "on" || syncCommit != "on" {
		in.TB.Logf("WARNING: commits are not durable on this cluster; use `make bench` (the bench cluster) for figures to compare with docs/PERFORMANCE.md")
	}
}

// waitLeader waits (at most 15 s) until this instance's River client leads:
// only the leader moves scheduled jobs to available, so a benchmark that
// starts before would measure the election.
func (in *Instance) waitLeader() {
	deadline := time.Now().Add(15 * time.Second)
	for {
		var n int
		err := in.DB.Pool.QueryRow(context.Background(), `SELECT count(*) FROM river_leader`).Scan(&n)
		if err == nil && n > 0 {
			return
		}
		if time.Now().After(deadline) {
			in.TB.Fatalf("no River leader after 15 s (err %v)", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// User creates a user with roles and an API token, and returns a client
// acting as them.
func (in *Instance) User(name string, roles ...string) *Client {
	in.TB.Helper()
	ctx := context.Background()
	u, err := in.Server.Auth.CreateUser(ctx, audit.System, auth.NewUser{
		Email: "bench-" + uuid.NewString() + "@example.org", Name: name,
		Roles: roles, TimeZone: "America/Chicago"})
	if err != nil {
		in.TB.Fatal(err)
	}
	_, secret, err := in.Server.Auth.CreateToken(ctx, audit.System, u.ID, "bench", nil)
	if err != nil {
		in.TB.Fatal(err)
	}
	return &Client{Base: in.URL, Token: secret, User: u, HTTP: NewHTTPClient()}
}

// Profile starts a CPU profile of this process (client and server: the
// server runs in-process) when CALLROOM_BENCH_CPUPROFILE names a directory.
// The returned function stops it; the file is <dir>/<name>.pprof. Read it
// with `go tool pprof -top <file>`.
func Profile(tb testing.TB, name string) (stop func()) {
	dir := os.Getenv("CALLROOM_BENCH_CPUPROFILE")
	if dir == "" {
		return func() {}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	path := filepath.Join(dir, name+".pprof")
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		tb.Logf("cpu profile not taken: %v", err)
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
		tb.Logf("cpu profile: %s", path)
	}
}
