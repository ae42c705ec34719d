package notify_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/callroom/callroom/internal/pg"
	"github.com/callroom/callroom/internal/pgtest"
	"github.com/callroom/callroom/notify"
)

// render writes a plan as "user:channel@delay[=method]" lines, naming users
// and contact methods by the labels the test gave them.
func render(plan []notify.Planned, names map[uuid.UUID]string) string {
	var lines []string
	for _, p := range plan {
		method := "-"
		if p.ContactMethodID != nil {
			method = names[*p.ContactMethodID]
			if method == "" {
				method = "?" + p.ContactMethodID.String()
			}
		}
		lines = append(lines, fmt.Sprintf("%s:%s@%s=%s", names[p.UserID], p.Channel, p.Delay, method))
	}
	return strings.Join(lines, "\n")
}

func TestPlan(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	s := notify.NewStore(db.Pool)
	ctx := context.Background()
	names := map[uuid.UUID]string{}
	user := func(name string) uuid.UUID {
		id := newUser(t, db, name)
		names[id] = name
		return id
	}
	method := func(userID uuid.UUID, label string, in notify.NewContactMethod) uuid.UUID {
		cm := mustMethod(t, s, userID, in)
		names[cm.ID] = label
		return cm.ID
	}
	// Every plan is made twice: reading the methods, and from the methods
	// read ahead (MethodsRead, as sending a page does): the same plan.
	plan := func(urgent bool, users ...uuid.UUID) []notify.Planned {
		t.Helper()
		p, err := notify.Plan(ctx, db.Pool, users, urgent)
		if err != nil {
			t.Fatal(err)
		}
		var known notify.Methods
		read := notify.MethodsRead(`SELECT unnest($1::uuid[])`, users, &known)
		rows, _ := db.Pool.Query(ctx, read.SQL, read.Args...)
		if err := read.Scan(rows); err != nil {
			t.Fatal(err)
		}
		ahead, err := notify.PlanWith(ctx, nil, &known, users, urgent)
		if err != nil {
			t.Fatal(err)
		}
		if g, w := render(ahead, names), render(p, names); g != w {
			t.Errorf("planned from the methods read ahead:\n%s\nread when planning:\n%s", g, w)
		}
		return p
	}
	check := func(name string, got []notify.Planned, want ...string) {
		t.Helper()
		if g, w := render(got, names), strings.Join(want, "\n"); g != w {
			t.Errorf("%s: plan\n%s\nwant\n%s", name, g, w)
		}
	}

	// Nobody set anything up: in-app at once, without a contact method.
	bare := user("bare")
	check("no contact methods", plan(false, bare), "bare:in_app@0s=-")
	// Methods without rules are not used, except by urgent pages.
	unruled := user("unruled")
	method(unruled, "unruled-mail", notify.NewContactMethod{Kind: "email", Address: "unruled@example.org"})
	check("no rules", plan(false, unruled), "unruled:in_app@0s=-")
	check("no rules, urgent", plan(true, unruled), "unruled:in_app@0s=-", "unruled:email@0s=unruled-mail")

	// Rules at 0 and 30 s on different methods, and an explicit in-app method.
	ana := user("ana")
	anaApp := method(ana, "ana-app", notify.NewContactMethod{Kind: "in_app"})
	anaMail := method(ana, "ana-mail", notify.NewContactMethod{Kind: "email", Address: "ana@example.org"})
	anaHook := method(ana, "ana-hook", notify.NewContactMethod{Kind: "webhook", Address: "https://gw.example.org/ana"})
	mustRule(t, s, ana, anaMail, 30)
	mustRule(t, s, ana, anaHook, 0)
	mustRule(t, s, ana, anaApp, 120) // in-app is at 0 whatever its rules say
	check("rules at 0 and 30", plan(false, ana),
		"ana:in_app@0s=ana-app", "ana:webhook@0s=ana-hook", "ana:email@30s=ana-mail")
	got := plan(false, ana)
	if got[1].Address != "https://gw.example.org/ana" || got[2].Address != "ana@example.org" || got[0].Address != "" {
		t.Errorf("addresses = %q, %q, %q", got[0].Address, got[1].Address, got[2].Address)
	}

	// Two rules on one method notify once, at the smaller delay.
	ben := user("ben")
	benMail := method(ben, "ben-mail", notify.NewContactMethod{Kind: "email", Address: "ben@example.org"})
	mustRule(t, s, ben, benMail, 2)
	mustRule(t, s, ben, benMail, 1)
	check("two rules on one method", plan(false, ben), "ben:in_app@0s=-", "ben:email@1s=ben-mail")

	// Urgent: every method at 0, in channel order, ties by creation.
	cat := user("cat")
	catHook := method(cat, "cat-hook", notify.NewContactMethod{Kind: "webhook", Address: "https://gw.example.org/cat"})
	method(cat, "cat-mail-1", notify.NewContactMethod{Kind: "email", Address: "cat1@example.org"})
	catMail2 := method(cat, "cat-mail-2", notify.NewContactMethod{Kind: "email", Address: "cat2@example.org"})
	method(cat, "cat-app", notify.NewContactMethod{Kind: "in_app"})
	mustRule(t, s, cat, catHook, 600)
	mustRule(t, s, cat, catMail2, 60)
	check("cat routine", plan(false, cat), "cat:in_app@0s=cat-app", "cat:email@1m0s=cat-mail-2", "cat:webhook@10m0s=cat-hook")
	check("cat urgent", plan(true, cat),
		"cat:in_app@0s=cat-app", "cat:email@0s=cat-mail-1", "cat:email@0s=cat-mail-2", "cat:webhook@0s=cat-hook")

	// Several users in one call keep the caller's order; a repeated user is
	// planned once, where first named.
	check("several users", plan(false, ben, bare, ana, ben),
		"ben:in_app@0s=-", "ben:email@1s=ben-mail",
		"bare:in_app@0s=-",
		"ana:in_app@0s=ana-app", "ana:webhook@0s=ana-hook", "ana:email@30s=ana-mail")
	check("several users, urgent", plan(true, cat, unruled),
		"cat:in_app@0s=cat-app", "cat:email@0s=cat-mail-1", "cat:email@0s=cat-mail-2", "cat:webhook@0s=cat-hook",
		"unruled:in_app@0s=-", "unruled:email@0s=unruled-mail")

	if p := plan(false); len(p) != 0 {
		t.Errorf("no users: plan %v", p)
	}
	// The same plan comes out every time.
	first := render(plan(true, ana, ben, cat), names)
	for range 5 {
		if again := render(plan(true, ana, ben, cat), names); again != first {
			t.Fatalf("plan changed between calls:\n%s\nthen\n%s", first, again)
		}
	}
}

// Plan runs inside the caller's transaction and sees its uncommitted rows.
func TestPlanInTransaction(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	u := newUser(t, db, "dana")
	tx, err := db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	var cm uuid.UUID
	if err := tx.QueryRow(ctx, `INSERT INTO contact_methods (user_id, kind, address) VALUES ($1, 'email', 'dana@example.org') RETURNING id`, u).Scan(&cm); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO notification_rules (user_id, contact_method_id, delay_seconds) VALUES ($1, $2, 45)`, u, cm); err != nil {
		t.Fatal(err)
	}
	var q pg.Querier = tx
	p, err := notify.Plan(ctx, q, []uuid.UUID{u}, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(p) != 2 || p[1].Channel != notify.KindEmail || p[1].Delay != 45*time.Second || *p[1].ContactMethodID != cm {
		t.Errorf("plan in transaction = %+v", p)
	}
}
