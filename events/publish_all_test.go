package events

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callroom/callroom/internal/pgtest"
)

// PublishAll writes every publication, in order, to every recipient's stream
// (one round trip for all), and an invalid one anywhere writes nothing.
func TestPublishAll(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	users := newUsers(t, db.Pool, 3)
	a, b, c := users[0], users[1], users[2]

	tx, err := db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	err = PublishAll(ctx, tx, []Publication{
		{UserIDs: []uuid.UUID{c, a, b, a}, Type: "page.updated", Data: map[string]string{"page_id": "p1"}},
		{UserIDs: []uuid.UUID{b}, Type: "page.notify", Data: map[string]string{"page_id": "p1"}},
		{UserIDs: nil, Type: "page.notify"}, // nobody: skipped
		{UserIDs: []uuid.UUID{c}, Type: "page.notify", Data: map[string]string{"page_id": "p1"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	// A second transaction continues each stream where it stopped.
	err = pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		return PublishAll(ctx, tx, []Publication{
			{UserIDs: []uuid.UUID{b, c}, Type: "page.updated", Data: map[string]string{"page_id": "p2"}},
			{UserIDs: []uuid.UUID{b}, Type: "page.notify", Data: map[string]string{"page_id": "p2"}},
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[uuid.UUID]string{a: "1:page.updated", b: "1:page.updated 2:page.notify 3:page.updated 4:page.notify",
		c: "1:page.updated 2:page.notify 3:page.updated"}
	for u, w := range want {
		evs, err := Since(ctx, db.Pool, u, 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		for i, e := range evs {
			if i > 0 {
				got += " "
			}
			got += fmt.Sprintf("%d:%s", e.Seq, e.Type)
		}
		if got != w {
			t.Errorf("user %s's stream: %q, want %q", u, got, w)
		}
		if u == b && len(evs) == 4 && string(evs[3].Data) != `{"page_id": "p2"}` {
			t.Errorf("b's 4th event's data: %s, want the second transaction's", evs[3].Data)
		}
	}

	// One malformed publication refuses them all before anything is sent.
	err = pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		return PublishAll(ctx, tx, []Publication{
			{UserIDs: []uuid.UUID{a}, Type: "page.updated"},
			{UserIDs: []uuid.UUID{a}, Type: "Page.Bad"},
		})
	})
	if !errors.Is(err, ErrInvalidEvent) {
		t.Fatalf("PublishAll with a malformed type: %v, want ErrInvalidEvent", err)
	}
	if evs, _ := Since(ctx, db.Pool, a, 1, 10); len(evs) != 0 {
		t.Errorf("a malformed batch wrote %d events", len(evs))
	}
}
