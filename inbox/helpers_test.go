package inbox_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callroom/callroom"
	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/auth"
	"github.com/callroom/callroom/inbox"
	"github.com/callroom/callroom/internal/pg"
	"github.com/callroom/callroom/internal/pgtest"
)

// env is one test's database and inbox store.
type env struct {
	t      *testing.T
	ctx    context.Context
	db     *pgtest.DB
	sealer *testSealer
	store  *inbox.Store
	users  *auth.Store
	n      int
}

func newEnv(t *testing.T) *env {
	t.Helper()
	db := pgtest.New(t)
	sealer := newTestSealer(t, db.Pool)
	return &env{t: t, ctx: context.Background(), db: db, sealer: sealer,
		store: inbox.NewStore(db.Pool, sealer, nil), users: auth.NewStore(db.Pool)}
}

// user creates a user and returns them as a caller.
func (e *env) user(name string, roles ...string) auth.Principal {
	e.t.Helper()
	e.n++
	u, err := e.users.CreateUser(e.ctx, audit.System, auth.NewUser{Email: fmt.Sprintf("u%d@example.org", e.n), Name: name, Roles: roles})
	if err != nil {
		e.t.Fatal(err)
	}
	return auth.Principal{User: u, ClientAddr: "192.0.2.1"}
}

func (e *env) thread(who auth.Principal, in inbox.NewThread) inbox.Thread {
	e.t.Helper()
	th, _, err := e.store.CreateThread(e.ctx, who, in)
	if err != nil {
		e.t.Fatalf("create thread: %v", err)
	}
	return th
}

func (e *env) group(who auth.Principal, history bool, members ...auth.Principal) inbox.Thread {
	e.t.Helper()
	return e.thread(who, inbox.NewThread{Kind: inbox.Group, Name: "4 West nurses", MemberIDs: ids(members...), HistoryForNewMembers: &history})
}

func (e *env) post(who auth.Principal, th inbox.Thread, text string) inbox.Message {
	e.t.Helper()
	m, err := e.store.Post(e.ctx, who, th.ID, inbox.NewMessage{Text: text})
	if err != nil {
		e.t.Fatalf("post: %v", err)
	}
	return m
}

// texts lists the texts of the thread's messages who can see, oldest first.
func (e *env) texts(who auth.Principal, th inbox.Thread) []string {
	e.t.Helper()
	page, err := e.store.Messages(e.ctx, who, th.ID, inbox.MessageQuery{Limit: inbox.MaxPageSize})
	if err != nil {
		e.t.Fatalf("messages: %v", err)
	}
	out := []string{}
	for i := len(page.Messages) - 1; i >= 0; i-- {
		out = append(out, page.Messages[i].Text)
	}
	return out
}

func (e *env) audits(f audit.Filter) []audit.Event {
	e.t.Helper()
	evs, err := audit.List(e.ctx, e.db.Pool, f)
	if err != nil {
		e.t.Fatal(err)
	}
	return evs
}

func (e *env) count(sql string, args ...any) int {
	e.t.Helper()
	var n int
	if err := e.db.Pool.QueryRow(e.ctx, sql, args...).Scan(&n); err != nil {
		e.t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// inTx runs fn in a committed transaction, as the page code does.
func (e *env) inTx(fn func(tx pgx.Tx) error) error {
	return pg.InTx(e.ctx, e.db.Pool, fn)
}

func ids(ps ...auth.Principal) []uuid.UUID {
	out := make([]uuid.UUID, len(ps))
	for i, p := range ps {
		out[i] = p.User.ID
	}
	return out
}

func forbidden(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, callroom.ErrForbidden) {
		t.Errorf("%s: %v, want forbidden", what, err)
	}
}

func invalid(t *testing.T, what string, err error, field string) {
	t.Helper()
	fe, ok := callroom.AsFieldError(err)
	if !ok || fe.Field != field {
		t.Errorf("%s: %v, want invalid %s", what, err, field)
	}
}

func conflict(t *testing.T, what string, err error) {
	t.Helper()
	var ce *callroom.ConflictError
	if !errors.As(err, &ce) {
		t.Errorf("%s: %v, want conflict", what, err)
	}
}

// denied reports whether the audit trail holds a refusal of action by who.
func (e *env) denied(who auth.Principal, action string) []audit.Event {
	e.t.Helper()
	var out []audit.Event
	for _, ev := range e.audits(audit.Filter{ActorID: &who.User.ID, Action: action}) {
		if ev.Outcome == audit.Denied {
			out = append(out, ev)
		}
	}
	return out
}

func ids2(xs ...uuid.UUID) []uuid.UUID { return xs }
