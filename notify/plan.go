package notify

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callroom/callroom/internal/pg"
)

// Planned is one notification to create: reach UserID over this contact
// method after Delay (counted from the moment the escalation step reached
// them), unless the page is acknowledged first.
type Planned struct {
	UserID uuid.UUID
	// ContactMethodID is nil for the implicit in-app notification of a user
	// who has no in_app contact method of their own.
	ContactMethodID *uuid.UUID
	Channel         string // KindInApp, KindEmail or KindWebhook
	Address         string // email address or webhook URL; empty for in-app
	Delay           time.Duration
}

// Plan decides how the people an escalation step reaches are notified. It
// reads everything in one query, whatever the number of users, and can run
// inside the caller's transaction (q).
//
// For each user:
//
//   - In-app comes first, at delay 0, always: it costs nothing and is what
//     the web client shows. It carries the user's in_app contact method id
//     if they have one, and a nil ContactMethodID otherwise. So a user with
//     no rules (or no contact methods at all) gets exactly one in-app
//     notification at 0.
//   - Each notification rule gives (contact method, delay). For one contact
//     method only the smallest delay is kept, so two rules on the same
//     method never notify twice for one step. Rules on the in_app method add
//     nothing: in-app is already at 0.
//   - Contact methods without a rule are not used, unless urgent.
//   - urgent (stat and asap pages) uses every contact method of the user at
//     delay 0, whatever the rules say.
//
// The result is ordered by user, in the order of userIDs, then by delay,
// then by channel (in_app, email, webhook), then by when the contact method
// was created (and its id), so the same input always gives the same plan. A user id listed more than
// once is planned once, at its first position: the caller's list may come
// from several overlapping targets of one step.
//
// Plan does not check that the users exist or are active; choosing whom to
// reach is the caller's job. An empty userIDs gives an empty plan without a
// query.
func Plan(ctx context.Context, q pg.Querier, userIDs []uuid.UUID, urgent bool) ([]Planned, error) {
	return PlanWith(ctx, q, nil, userIDs, urgent)
}

// Methods are contact methods read ahead (MethodsRead), so that planning
// for the people they cover costs no round trip of its own.
type Methods struct {
	covered map[uuid.UUID]bool
	byUser  map[uuid.UUID][]method
}

// MethodsRead is the read of the contact methods of the people whose ids
// who returns (a query with parameter $1 = arg; each once, however often
// named), into m: a statement to send with others (pg.InTxPipelined),
// before the caller knows for certain whom it will reach. Sending a page
// reads those its service's first step names.
func MethodsRead(who string, arg any, m *Methods) pg.Read {
	return pg.Read{SQL: `SELECT w.user_id AS covered, ` + methodColumns + `
		FROM (SELECT DISTINCT user_id FROM (` + who + `) w0 (user_id)) w LEFT JOIN contact_methods cm ON cm.user_id = w.user_id`, Args: []any{arg},
		Scan: func(rows pgx.Rows) error {
			m.covered, m.byUser = map[uuid.UUID]bool{}, map[uuid.UUID][]method{}
			var covered uuid.UUID
			var userID, id *uuid.UUID
			var kind, address *string
			var createdAt *time.Time
			var delay *int32
			_, err := pgx.ForEachRow(rows, []any{&covered, &userID, &id, &kind, &address, &createdAt, &delay}, func() error {
				m.covered[covered] = true
				if id != nil {
					m.byUser[covered] = append(m.byUser[covered], method{UserID: covered, ID: *id, Kind: *kind, Address: *address,
						CreatedAt: *createdAt, Delay: delay})
				}
				return nil
			})
			return err
		}}
}

// PlanWith is Plan that reads nothing when known (which may be nil) covers
// every one of userIDs.
func PlanWith(ctx context.Context, q pg.Querier, known *Methods, userIDs []uuid.UUID, urgent bool) ([]Planned, error) {
	var users []uuid.UUID
	seen := make(map[uuid.UUID]bool, len(userIDs))
	for _, id := range userIDs {
		if !seen[id] {
			seen[id] = true
			users = append(users, id)
		}
	}
	if len(users) == 0 {
		return nil, nil
	}

	byUser := known.of(users)
	if byUser == nil {
		var err error
		if byUser, err = readMethods(ctx, q, users); err != nil {
			return nil, err
		}
	}

	plan := make([]Planned, 0, len(users))
	for _, userID := range users {
		inApp := Planned{UserID: userID, Channel: KindInApp}
		type entry struct {
			Planned
			createdAt time.Time
		}
		var others []entry
		for _, m := range byUser[userID] {
			if m.Kind == KindInApp {
				id := m.ID
				inApp.ContactMethodID = &id
				continue
			}
			var delay time.Duration
			switch {
			case urgent:
			case m.Delay != nil:
				delay = time.Duration(*m.Delay) * time.Second
			default:
				continue // no rule uses this method
			}
			id := m.ID
			others = append(others, entry{Planned{UserID: userID, ContactMethodID: &id, Channel: m.Kind,
				Address: m.Address, Delay: delay}, m.CreatedAt})
		}
		slices.SortFunc(others, func(a, b entry) int {
			return cmp.Or(
				cmp.Compare(a.Delay, b.Delay),
				cmp.Compare(channelRank(a.Channel), channelRank(b.Channel)),
				a.createdAt.Compare(b.createdAt),
				slices.Compare(a.ContactMethodID[:], b.ContactMethodID[:]),
			)
		})
		// In-app is at 0 and ranks first among channels, so it leads.
		plan = append(plan, inApp)
		for _, e := range others {
			plan = append(plan, e.Planned)
		}
	}
	return plan, nil
}

// of returns the methods of users, or nil unless m covers all of them.
func (m *Methods) of(users []uuid.UUID) map[uuid.UUID][]method {
	if m == nil || m.covered == nil {
		return nil
	}
	for _, u := range users {
		if !m.covered[u] {
			return nil
		}
	}
	return m.byUser
}

// method is a contact method as planning reads it: with the smallest delay
// of its rules (nil when it has none).
type method struct {
	UserID    uuid.UUID `db:"user_id"`
	ID        uuid.UUID `db:"id"`
	Kind      string    `db:"kind"`
	Address   string    `db:"address"`
	CreatedAt time.Time `db:"created_at"`
	Delay     *int32    `db:"delay_seconds"`
}

// methodsSQL reads one person's contact methods. It compares user_id with
// one value, not with ANY of an array: PostgreSQL plans a statement with an
// array parameter for every execution (its generic plan, which assumes ten
// elements, never looks cheaper than a custom one for the usual one or two),
// and that planning was a fifth of the database's CPU when paging
// (docs/PERFORMANCE.md). Several people are read in one round trip.
const methodsSQL = `SELECT ` + methodColumns + ` FROM contact_methods cm WHERE cm.user_id = $1`

// methodColumns are a contact method's (cm) columns as planning reads them
// (method).
const methodColumns = `cm.user_id, cm.id, cm.kind, cm.address, cm.created_at,
	(SELECT min(nr.delay_seconds) FROM notification_rules nr WHERE nr.contact_method_id = cm.id) AS delay_seconds`

func readMethods(ctx context.Context, q pg.Querier, users []uuid.UUID) (map[uuid.UUID][]method, error) {
	byUser := make(map[uuid.UUID][]method, len(users))
	collect := func(rows pgx.Rows) error {
		ms, err := pgx.CollectRows(rows, pgx.RowToStructByName[method])
		for _, m := range ms {
			byUser[m.UserID] = append(byUser[m.UserID], m)
		}
		return err
	}
	if len(users) == 1 {
		rows, _ := q.Query(ctx, methodsSQL, users[0])
		return byUser, collect(rows)
	}
	var b pgx.Batch
	for _, u := range users {
		b.Queue(methodsSQL, u)
	}
	br := q.SendBatch(ctx, &b)
	for range users {
		rows, _ := br.Query()
		if err := collect(rows); err != nil {
			br.Close()
			return nil, err
		}
	}
	return byUser, br.Close()
}

// channelRank orders channels within one delay: in-app, email, webhook.
func channelRank(channel string) int {
	switch channel {
	case KindInApp:
		return 0
	case KindEmail:
		return 1
	case KindWebhook:
		return 2
	}
	return 3
}
