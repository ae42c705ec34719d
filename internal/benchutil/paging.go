package benchutil

import (
	"context"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/escalation"
)

// Service creates an escalation policy whose step i pages targets[i] and
// waits delay before the next step, and a service paging through it.
func (in *Instance) Service(name string, delay time.Duration, targets ...uuid.UUID) uuid.UUID {
	in.TB.Helper()
	ctx := context.Background()
	np := escalation.NewPolicy{Name: name + " policy " + uuid.NewString()[:8]}
	for _, t := range targets {
		t := t
		np.Steps = append(np.Steps, escalation.Step{DelaySeconds: int(delay / time.Second),
			Targets: []escalation.Target{{UserID: &t}}})
	}
	pol, err := in.Server.Pages.CreatePolicy(ctx, audit.System, np)
	if err != nil {
		in.TB.Fatal(err)
	}
	svc, err := in.Server.Pages.CreateService(ctx, audit.System, escalation.NewService{
		Name: name + " " + uuid.NewString()[:8], EscalationPolicyID: pol.ID})
	if err != nil {
		in.TB.Fatal(err)
	}
	return svc.ID
}

// Stages is where a page's time went between being sent and its step
// firing and notification, from its timeline (page_events, stamped with
// the database's clock_timestamp(), the same clock as this process's).
type Stages struct {
	Created  Latencies // send -> the page row's "created" entry (inside the create transaction)
	Step     Latencies // created -> step 0 fired (the step job was picked up)
	Notified Latencies // step fired -> in-app notification published (the delivery job ran)
	Received Latencies // published -> event read from the stream
}

// PageStages reads the timelines of pages (sent at sent[i], received at
// received[i], zero when never) and splits their latency into Stages.
func (in *Instance) PageStages(ids []uuid.UUID, sent, received []time.Time) (*Stages, error) {
	rows, err := in.DB.Pool.Query(context.Background(), `SELECT page_id,
			min(at) FILTER (WHERE kind = 'created'),
			min(at) FILTER (WHERE kind = 'step' AND step = 0),
			min(at) FILTER (WHERE kind = 'notified')
		FROM page_events WHERE page_id = ANY ($1) GROUP BY page_id`, ids)
	if err != nil {
		return nil, err
	}
	type marks struct{ created, step, notified *time.Time }
	got := map[uuid.UUID]marks{}
	for rows.Next() {
		var id uuid.UUID
		var m marks
		if err := rows.Scan(&id, &m.created, &m.step, &m.notified); err != nil {
			rows.Close()
			return nil, err
		}
		got[id] = m
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	st := &Stages{}
	for i, id := range ids {
		m, ok := got[id]
		if !ok || m.created == nil {
			continue
		}
		st.Created.Add(m.created.Sub(sent[i]))
		if m.step == nil {
			continue
		}
		st.Step.Add(m.step.Sub(*m.created))
		if m.notified == nil {
			continue
		}
		st.Notified.Add(m.notified.Sub(*m.step))
		if !received[i].IsZero() {
			st.Received.Add(received[i].Sub(*m.notified))
		}
	}
	return st, nil
}

// String is one line per stage.
func (s *Stages) String() string {
	return "  send->created:     " + s.Created.String() + "\n" +
		"  created->step:     " + s.Step.String() + "\n" +
		"  step->notified:    " + s.Notified.String() + "\n" +
		"  notified->stream:  " + s.Received.String()
}

// RiverJobStates counts River's jobs by queue and state, for a log line
// that shows whether work is piling up. Jobs that worker.InsertTx marked
// available ahead of their time count as not-yet-due; "available" ones are
// due and waiting for a worker.
func (in *Instance) RiverJobStates() string {
	rows, err := in.DB.Pool.Query(context.Background(), `SELECT queue || '/' ||
		CASE WHEN state = 'available' AND scheduled_at > now() THEN 'not-yet-due' ELSE state::text END, count(*)
		FROM river_job GROUP BY 1`)
	if err != nil {
		return err.Error()
	}
	m, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
		var k string
		var n int
		err := r.Scan(&k, &n)
		return k + "=" + strconv.Itoa(n), err
	})
	if err != nil {
		return err.Error()
	}
	sort.Strings(m)
	return strings.Join(m, " ")
}

// JobsDone counts the jobs of kind that River finished (completed) in
// [from, to).
func (in *Instance) JobsDone(kind string, from, to time.Time) int {
	var n int
	err := in.DB.Pool.QueryRow(context.Background(), `SELECT count(*) FROM river_job
		WHERE kind = $1 AND state = 'completed' AND finalized_at >= $2 AND finalized_at < $3`, kind, from, to).Scan(&n)
	if err != nil {
		in.TB.Logf("counting %s jobs: %v", kind, err)
	}
	return n
}
