package events_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callroom/callroom/events"
	"github.com/callroom/callroom/internal/pg"
)

// Example shows both ends: a change and its event committed together, and a
// client's subscription receiving it. It needs a database, so it is compiled
// but not run; the package's tests exercise the same calls against one.
func Example() {
	ctx := context.Background()
	pool, err := pg.Open(ctx, os.Getenv("DATABASE_URL"), pg.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pool.Close()

	// One hub per process, running for the life of the process.
	hub := events.NewHub(pool, slog.Default())
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	go hub.Run(runCtx) //nolint:errcheck // returns nil when runCtx ends

	physician := uuid.MustParse("0b7c6a52-2a4b-4d8e-9a39-4f3f2c1d0e5a")

	// A client connects without a Last-Event-ID: it starts at the current
	// position and gets only what happens from now on.
	from, err := hub.CurrentSeq(ctx, physician)
	if err != nil {
		fmt.Println(err)
		return
	}
	sub := hub.Subscribe(physician, from)
	defer sub.Close()

	// A nurse pages the physician: the page and its event commit together.
	pageID := uuid.New()
	err = pg.InTx(ctx, pool, func(tx pgx.Tx) error {
		// ... INSERT INTO pages ... in tx ...
		return events.Publish(ctx, tx, []uuid.UUID{physician}, "page.notify",
			map[string]string{"page_id": pageID.String(), "priority": "stat"}) // ids and codes only
	})
	if err != nil {
		fmt.Println(err)
		return
	}

	e, err := sub.Next(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	// The client remembers e.Seq (the SSE id) and reconnects with it as
	// Last-Event-ID: hub.Subscribe(physician, e.Seq) resumes with no gap.
	fmt.Println(e.Seq == from+1, e.Type, string(e.Data))
}
