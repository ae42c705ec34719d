// Package pgtest gives each test its own real PostgreSQL database, copied from
// a migrated template. Copying a template with STRATEGY FILE_COPY takes a few
// milliseconds, so every test starts from a clean, fully migrated schema and
// tests can run in parallel without seeing each other's rows.
//
// The server comes from CALLROOM_TEST_DATABASE_URL (any database on it; the
// user must be allowed to create databases). Without it, pgtest starts the
// project's private test cluster with scripts/postgres.sh test, so `go test
// ./...` works on a fresh checkout as well as `make test` does.
package pgtest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/callroom/callroom/internal/pg"
	"github.com/callroom/callroom/migrations"
)

var (
	setupOnce sync.Once
	setupErr  error
	adminURL  string
	template  string
)

// DB is one test's database.
type DB struct {
	Pool *pgxpool.Pool
	// URL connects to this test's database, for subprocesses under test.
	URL  string
	Name string
}

// New creates a fresh migrated database for t and drops it when t ends.
func New(t testing.TB) *DB {
	t.Helper()
	return NewWithPoolSize(t, 10)
}

// NewWithPoolSize is New with an explicit pool size.
func NewWithPoolSize(t testing.TB, maxConns int32) *DB {
	t.Helper()
	setupOnce.Do(func() { setupErr = setup() })
	if setupErr != nil {
		t.Fatalf("pgtest: %v", setupErr)
	}
	ctx := context.Background()
	name := "t_" + randomHex(8)
	admin, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	_, err = admin.Exec(ctx, fmt.Sprintf(`CREATE DATABASE %s TEMPLATE %s STRATEGY FILE_COPY`, name, template))
	admin.Close(ctx)
	if err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	dbURL := withDatabase(adminURL, name)
	pool, err := pg.Open(ctx, dbURL, pg.Options{MaxConns: maxConns})
	if err != nil {
		t.Fatalf("pgtest: open: %v", err)
	}
	t.Cleanup(func() {
		pool.Close()
		c, err := pgx.Connect(context.Background(), adminURL)
		if err != nil {
			return
		}
		defer c.Close(context.Background())
		c.Exec(context.Background(), fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", name)) //nolint:errcheck
	})
	return &DB{Pool: pool, URL: dbURL, Name: name}
}

func setup() error {
	ctx := context.Background()
	adminURL = os.Getenv("CALLROOM_TEST_DATABASE_URL")
	if adminURL == "" {
		u, err := startPrivateCluster()
		if err != nil {
			return err
		}
		adminURL = u
	}
	all, err := migrations.All()
	if err != nil {
		return err
	}
	h := sha256.New()
	for _, m := range all {
		io.WriteString(h, m.SQL) //nolint:errcheck
	}
	template = "tmpl_" + hex.EncodeToString(h.Sum(nil))[:16]

	admin, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("connect %s: %w", redact(adminURL), err)
	}
	defer admin.Close(ctx)
	// Several test binaries start at once; one of them builds the template.
	if _, err := admin.Exec(ctx, "SELECT pg_advisory_lock(7415)"); err != nil {
		return err
	}
	defer admin.Exec(ctx, "SELECT pg_advisory_unlock(7415)") //nolint:errcheck
	var exists bool
	if err := admin.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", template).Scan(&exists); err != nil {
		return err
	}
	if exists {
		return nil
	}
	building := template + "_building"
	admin.Exec(ctx, fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", building)) //nolint:errcheck
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+building); err != nil {
		return err
	}
	pool, err := pg.Open(ctx, withDatabase(adminURL, building), pg.Options{MaxConns: 2})
	if err != nil {
		return err
	}
	err = migrations.Apply(ctx, pool, slog.New(slog.NewTextHandler(io.Discard, nil)))
	pool.Close()
	if err != nil {
		return fmt.Errorf("migrate template: %w", err)
	}
	if _, err := admin.Exec(ctx, fmt.Sprintf("ALTER DATABASE %s RENAME TO %s", building, template)); err != nil {
		return err
	}
	// Record when the template was made: templates of other schemas may be in
	// use by test runs of other checkouts or branches on the same server, so
	// they are dropped only when they are hours old.
	admin.Exec(ctx, fmt.Sprintf("COMMENT ON DATABASE %s IS 'pgtest %d'", template, time.Now().Unix())) //nolint:errcheck
	rows, err := admin.Query(ctx, `SELECT datname FROM pg_database
		WHERE datname LIKE 'tmpl\_%' AND datname <> $1 AND datname NOT LIKE '%\_building'
		  AND coalesce(substring(shobj_description(oid, 'pg_database') FROM 'pgtest ([0-9]+)')::bigint, 0) < $2`,
		template, time.Now().Add(-6*time.Hour).Unix())
	if err == nil {
		old, _ := pgx.CollectRows(rows, pgx.RowTo[string])
		for _, name := range old {
			admin.Exec(ctx, fmt.Sprintf("DROP DATABASE IF EXISTS %s", name)) //nolint:errcheck // in use: try next time
		}
	}
	return nil
}

// RepoRoot finds the directory holding go.mod, for tests that run project scripts.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("go.mod not found above the working directory")
		}
		dir = parent
	}
}

func startPrivateCluster() (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	cmd := exec.Command(filepath.Join(root, "scripts", "postgres.sh"), "test")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("scripts/postgres.sh test: %w (set CALLROOM_TEST_DATABASE_URL to use another server)", err)
	}
	return strings.TrimSpace(string(out)), nil
}

func withDatabase(raw, name string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	u.Path = "/" + name
	return u.String()
}

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable url)"
	}
	return u.Redacted()
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b) //nolint:errcheck
	return hex.EncodeToString(b)
}

// Admin connects to the server as its administrator (not to this test's
// database), for tests that act on the database from outside: refusing
// connections, ending sessions. The connection closes when the test ends.
func (db *DB) Admin(t testing.TB) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(context.Background(), adminURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}
