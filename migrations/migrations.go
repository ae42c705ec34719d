// Package migrations holds callroom's SQL schema as numbered files and applies
// them, together with River's own migrations, one version per transaction.
package migrations

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/callroom/callroom/internal/pg"
)

//go:embed *.sql
var files embed.FS

// Migration is one numbered SQL file.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// All returns callroom's migrations in order.
func All() ([]Migration, error) {
	entries, err := fs.ReadDir(files, ".")
	if err != nil {
		return nil, err
	}
	var out []Migration
	for _, e := range entries {
		name := e.Name()
		num, rest, ok := strings.Cut(name, "_")
		if !ok || !strings.HasSuffix(name, ".sql") {
			return nil, fmt.Errorf("migration %q: want NNNN_name.sql", name)
		}
		v, err := strconv.Atoi(num)
		if err != nil {
			return nil, fmt.Errorf("migration %q: %w", name, err)
		}
		b, err := files.ReadFile(name)
		if err != nil {
			return nil, err
		}
		out = append(out, Migration{Version: v, Name: strings.TrimSuffix(rest, ".sql"), SQL: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	for i := range out {
		if out[i].Version != i+1 {
			return nil, fmt.Errorf("migration versions must be 1..n without gaps; found %d at position %d", out[i].Version, i+1)
		}
	}
	return out, nil
}

// lockKey serialises migrators: two instances starting at once must not both
// apply the same version.
const lockKey = 0x63616c6c726f6f6d // "callroom"

// Apply brings the database up to date: River's migrations, then callroom's.
// Each version runs in its own transaction, because River's later versions
// depend on types created by earlier ones being committed (applying all of
// them in one transaction fails on a fresh database).
func Apply(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", int64(lockKey)); err != nil {
		return fmt.Errorf("migration lock: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", int64(lockKey)) //nolint:errcheck

	if err := applyRiver(ctx, pool, log); err != nil {
		return fmt.Errorf("river migrations: %w", err)
	}
	return applyOwn(ctx, pool, log)
}

func applyRiver(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger) error {
	m, err := rivermigrate.New(riverpgxv5.New(pool), nil)
	if err != nil {
		return err
	}
	existing, err := m.ExistingVersions(ctx)
	if err != nil {
		return err
	}
	done := map[int]bool{}
	for _, v := range existing {
		done[v.Version] = true
	}
	for _, v := range m.AllVersions() {
		if done[v.Version] {
			continue
		}
		err := pg.InTx(ctx, pool, func(tx pgx.Tx) error {
			_, err := m.MigrateTx(ctx, tx, rivermigrate.DirectionUp, &rivermigrate.MigrateOpts{TargetVersion: v.Version})
			return err
		})
		if err != nil {
			return fmt.Errorf("version %d: %w", v.Version, err)
		}
		log.Info("applied river migration", "version", v.Version)
	}
	return nil
}

func applyOwn(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger) error {
	all, err := All()
	if err != nil {
		return err
	}
	if _, err := pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS callroom_migrations (
		version int PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return err
	}
	var current int
	if err := pool.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM callroom_migrations").Scan(&current); err != nil {
		return err
	}
	if current > len(all) {
		return fmt.Errorf("database is at migration %d but this binary knows only %d: run a newer callroom", current, len(all))
	}
	for _, m := range all[current:] {
		err := pg.InTx(ctx, pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO callroom_migrations (version, name) VALUES ($1, $2)", m.Version, m.Name)
			return err
		})
		if err != nil {
			return fmt.Errorf("migration %04d_%s: %w", m.Version, m.Name, err)
		}
		log.Info("applied migration", "version", m.Version, "name", m.Name)
	}
	return nil
}

// Version returns the newest migration version this binary carries; tests use
// it to name their template database.
func Version() int {
	all, err := All()
	if err != nil {
		return 0
	}
	return len(all)
}
