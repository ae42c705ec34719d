package auth_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/auth"
	"github.com/callroom/callroom/events"
	"github.com/callroom/callroom/internal/pg"
	"github.com/callroom/callroom/internal/pgtest"
)

// TestTokensKeptWhileChangesAreHeard runs the token cache as an instance
// does: told by its events hub of every change PostgreSQL notifies
// (migrations/0018), and of the hub's connection coming and going.
func TestTokensKeptWhileChangesAreHeard(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	s := auth.NewStore(db.Pool)
	heard := make(chan string, 16)
	listening := make(chan bool, 16)
	hub := events.NewHub(db.Pool, nil)
	hub.Watch(events.Watcher{Channel: auth.CredentialsChannel,
		Notified:  func(p string) { s.CredentialsChanged(p); heard <- p },
		Listening: func(on bool) { s.CredentialsListening(on); listening <- on }})
	hctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- hub.Run(hctx) }()
	t.Cleanup(func() { cancel(); <-done })
	waitFor := func(want bool) {
		t.Helper()
		select {
		case on := <-listening:
			if on != want {
				t.Fatalf("listening = %v, want %v", on, want)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("the hub never said listening = %v", want)
		}
	}
	// heardChange waits for the notification of a change just committed,
	// after the notification of a sentinel sent after it: anything the
	// change notified has been handed over by then.
	heardChange := func(want bool) {
		t.Helper()
		if _, err := db.Pool.Exec(ctx, `SELECT pg_notify($1, 'sentinel')`, auth.CredentialsChannel); err != nil {
			t.Fatal(err)
		}
		changed := false
		for {
			select {
			case p := <-heard:
				if p == "sentinel" {
					if changed != want {
						t.Fatalf("change notified = %v, want %v", changed, want)
					}
					return
				}
				changed = true
			case <-time.After(30 * time.Second):
				t.Fatal("the sentinel was never heard")
			}
		}
	}
	waitFor(true)

	newToken := func(email string) (id, secret string) {
		t.Helper()
		u, err := s.CreateUser(ctx, audit.System, auth.NewUser{Email: email, Name: "Pager Gateway", Roles: []string{"nurse"}})
		if err != nil {
			t.Fatal(err)
		}
		tok, secret, err := s.CreateToken(ctx, audit.System, u.ID, "gateway", nil)
		if err != nil {
			t.Fatal(err)
		}
		return tok.ID.String(), secret
	}
	authenticates := func(secret string, want bool) {
		t.Helper()
		_, err := s.Authenticate(ctx, secret, "127.0.0.1")
		if want && err != nil {
			t.Fatalf("token does not authenticate: %v", err)
		}
		if !want && !errors.Is(err, auth.ErrUnauthenticated) {
			t.Fatalf("token authenticates (err %v), want ErrUnauthenticated", err)
		}
	}
	// removeUnheard deletes a token where no trigger sees it: only a
	// cache still answers for it.
	removeUnheard := func(id string) {
		t.Helper()
		err := pg.InTx(ctx, db.Pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SET LOCAL session_replication_role = replica`); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `DELETE FROM api_tokens WHERE id = $1`, id)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}

	// A token that authenticated is kept: removed unheard, it still works.
	a, secretA := newToken("a@example.org")
	authenticates(secretA, true)
	removeUnheard(a)
	authenticates(secretA, true)

	// Any change heard empties the cache: the next request is looked up.
	b, secretB := newToken("b@example.org")
	authenticates(secretB, true)
	if _, err := db.Pool.Exec(ctx, `UPDATE api_tokens SET revoked_at = now() WHERE id = $1`, b); err != nil {
		t.Fatal(err)
	}
	heardChange(true)
	authenticates(secretA, false)
	authenticates(secretB, false)

	// Recording a token's use changes nothing that is kept.
	_, secretC := newToken("c@example.org")
	authenticates(secretC, true)
	if _, err := db.Pool.Exec(ctx, `UPDATE api_tokens SET last_used_at = now() - interval '1 hour'`); err != nil {
		t.Fatal(err)
	}
	heardChange(false)

	// An expiry set sooner, and a user deactivated elsewhere, are heard.
	for _, change := range []string{
		`UPDATE api_tokens SET expires_at = now() - interval '1 second' WHERE id = $1`,
		`UPDATE users SET active = false WHERE id = (SELECT user_id FROM api_tokens WHERE id = $1)`,
	} {
		d, secretD := newToken("d" + time.Now().Format("150405.000000") + "@example.org")
		authenticates(secretD, true)
		if _, err := db.Pool.Exec(ctx, change, d); err != nil {
			t.Fatal(err)
		}
		heardChange(true)
		authenticates(secretD, false)
	}

	// While the hub is not listening nothing is kept, and what was kept
	// is forgotten: changes then may go unheard.
	e, secretE := newToken("e@example.org")
	authenticates(secretE, true)
	if _, err := db.Pool.Exec(ctx, `SELECT pg_terminate_backend($1)`, hub.ListenerPID()); err != nil {
		t.Fatal(err)
	}
	waitFor(false)
	removeUnheard(e)
	authenticates(secretE, false)
	waitFor(true)
	f, secretF := newToken("f@example.org")
	authenticates(secretF, true)
	removeUnheard(f)
	authenticates(secretF, true)
}
