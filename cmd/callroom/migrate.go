package main

import (
	"context"
	"io"

	"github.com/callroom/callroom/internal/pg"
	"github.com/callroom/callroom/migrations"
)

func migrate(ctx context.Context, args []string, stderr io.Writer) error {
	fs, cfg, check := newFlags("migrate", stderr, false)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := check(); err != nil {
		return err
	}
	log := newLogger(stderr, cfg)
	pool, err := pg.Open(ctx, cfg.databaseURL, pg.Options{MaxConns: 4})
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := migrations.Apply(ctx, pool, log); err != nil {
		return err
	}
	log.Info("database is up to date", "version", migrations.Version())
	return nil
}
