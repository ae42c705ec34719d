package inbox_test

import (
	"slices"
	"testing"

	"github.com/google/uuid"

	"github.com/callroom/callroom/inbox"
)

// TestBroadcastToEveryoneOnASchedule: a group made from an on-call schedule
// holds every active nurse and physician on it (rotations, rules, overrides
// not yet ended) and nobody else, is named after the schedule, and an
// acknowledgement-required message to it shows who acknowledged out of them.
func TestBroadcastToEveryoneOnASchedule(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	charge := e.user("Charge RN", "nurse")
	rot1, rot2 := e.user("Ana RN", "nurse"), e.user("Dr Ben", "physician")
	ruled, added := e.user("Cat RN", "nurse"), e.user("Dan RN", "nurse")
	ended, sched := e.user("Eve RN", "nurse"), e.user("Sam Scheduler", "scheduler")
	gone := e.user("Fay RN", "nurse")
	if _, err := e.db.Pool.Exec(e.ctx, `UPDATE users SET active = false WHERE id = $1`, gone.User.ID); err != nil {
		t.Fatal(err)
	}
	outsider := e.user("Gus RN", "nurse")

	var schedule uuid.UUID
	if err := e.db.Pool.QueryRow(e.ctx, `INSERT INTO schedules (name, time_zone) VALUES ('4 West nights', 'America/Chicago') RETURNING id`).
		Scan(&schedule); err != nil {
		t.Fatal(err)
	}
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO rotations (schedule_id, participants, shift_length, shift_unit, start_at)
			VALUES ($1, ARRAY[$2, $3, $4, $2]::uuid[], 12, 'hours', now() - interval '30 days')`,
			[]any{schedule, rot1.User.ID, rot2.User.ID, sched.User.ID}},
		{`INSERT INTO schedule_rules (schedule_id, user_id, windows) VALUES ($1, $2, '[{"weekdays":[1],"start":"19:00","end":"07:00"}]')`,
			[]any{schedule, ruled.User.ID}},
		{`INSERT INTO schedule_overrides (schedule_id, kind, add_user_id, start_at, end_at)
			VALUES ($1, 'add', $2, now() + interval '1 day', now() + interval '2 days'),
			       ($1, 'add', $3, now() - interval '2 days', now() - interval '1 day'),
			       ($1, 'add', $4, now(), now() + interval '1 day')`,
			[]any{schedule, added.User.ID, ended.User.ID, gone.User.ID}},
	} {
		if _, err := e.db.Pool.Exec(e.ctx, q.sql, q.args...); err != nil {
			t.Fatal(err)
		}
	}

	th := e.thread(charge, inbox.NewThread{Kind: inbox.Group, ScheduleID: &schedule})
	var got []uuid.UUID
	for _, m := range th.Members {
		got = append(got, m.UserID)
	}
	want := ids(charge, rot1, rot2, ruled, added)
	slices.SortFunc(got, func(a, b uuid.UUID) int { return slices.Compare(a[:], b[:]) })
	slices.SortFunc(want, func(a, b uuid.UUID) int { return slices.Compare(a[:], b[:]) })
	if !slices.Equal(got, want) {
		t.Errorf("members %v, want the creator and the active clinicians on the schedule %v", got, want)
	}
	if th.Name != "4 West nights" || th.Kind != inbox.Group {
		t.Errorf("thread %q %s, want the schedule's name", th.Name, th.Kind)
	}

	m, err := e.store.Post(e.ctx, charge, th.ID, inbox.NewMessage{Text: "Need a nurse for the 19:00 shift", AckRequired: true})
	if err != nil {
		t.Fatal(err)
	}
	if m.AcknowledgedBy == nil || m.AcknowledgedBy.Of != 4 || m.AcknowledgedBy.Count != 0 {
		t.Fatalf("acknowledged_by %+v, want 0 of 4", m.AcknowledgedBy)
	}
	if m, err = e.store.Acknowledge(e.ctx, added, th.ID, m.ID); err != nil {
		t.Fatal(err)
	}
	if m.AcknowledgedBy.Count != 1 || m.AcknowledgedBy.Users[0].UserID != added.User.ID {
		t.Errorf("acknowledged_by %+v, want Dan", m.AcknowledgedBy)
	}
	_, err = e.store.Acknowledge(e.ctx, outsider, th.ID, m.ID)
	forbidden(t, "someone not on the schedule acknowledging", err)

	// A given name wins; bad input writes nothing.
	named := e.thread(charge, inbox.NewThread{Kind: inbox.Group, Name: "19:00 shift", ScheduleID: &schedule})
	if named.Name != "19:00 shift" || len(named.Members) != 5 {
		t.Errorf("named broadcast group %q with %d members", named.Name, len(named.Members))
	}
	threads := e.count(`SELECT count(*) FROM threads`)
	for _, c := range []struct {
		name string
		in   inbox.NewThread
	}{
		{"an unknown schedule", inbox.NewThread{Kind: inbox.Group, ScheduleID: ptr(uuid.New())}},
		{"the nil schedule", inbox.NewThread{Kind: inbox.Group, ScheduleID: ptr(uuid.Nil)}},
		{"a schedule on a direct thread", inbox.NewThread{Kind: inbox.Direct, MemberIDs: ids(rot1), ScheduleID: &schedule}},
		{"a schedule on a patient thread", inbox.NewThread{Kind: inbox.Patient, PatientRef: "Patient/1", ScheduleID: &schedule}},
	} {
		_, _, err := e.store.CreateThread(e.ctx, charge, c.in)
		invalid(t, c.name, err, "schedule_id")
	}
	var empty uuid.UUID
	if err := e.db.Pool.QueryRow(e.ctx, `INSERT INTO schedules (name, time_zone) VALUES ('empty', 'UTC') RETURNING id`).Scan(&empty); err != nil {
		t.Fatal(err)
	}
	_, _, err = e.store.CreateThread(e.ctx, charge, inbox.NewThread{Kind: inbox.Group, ScheduleID: &empty})
	invalid(t, "a schedule with nobody on it", err, "schedule_id")
	if n := e.count(`SELECT count(*) FROM threads`); n != threads {
		t.Errorf("%d threads after refused requests, want %d", n, threads)
	}
}
