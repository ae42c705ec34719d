package benchutil

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/google/uuid"

	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/oncall"
)

// The size of schedule the on-call targets are stated for.
const (
	ScheduleParticipants = 50
	ScheduleRotations    = 10
	ScheduleRules        = 20
	ScheduleOverrides    = 1000
)

// BigSchedule is the on-call benchmark's schedule: 50 participants, 10
// rotations of 5, 20 rules (10 restricting rotations to nights and weekends,
// 10 adding a person on nights) and 1,000 overrides of 1-48 h spread over
// 2026 in America/Chicago, so that lookups cross both DST changes. It has the
// shape of oncall's BenchmarkOnCallAt schedule, but its overrides never
// contradict each other (each one passes oncall.ValidateOverride against
// those before it), so the store accepts every one of them.
func BigSchedule(people []uuid.UUID, seed uint64) (oncall.Schedule, time.Time) {
	if len(people) != ScheduleParticipants {
		panic(fmt.Sprintf("BigSchedule wants %d people, got %d", ScheduleParticipants, len(people)))
	}
	rng := rand.New(rand.NewPCG(seed, seed+1))
	chi, err := time.LoadLocation("America/Chicago")
	if err != nil {
		panic(err)
	}
	year := time.Date(2026, 1, 1, 0, 0, 0, 0, chi)
	s := oncall.Schedule{Name: "Bench", TimeZone: "America/Chicago"}
	units := []struct {
		unit   oncall.ShiftUnit
		length int
	}{{oncall.ShiftUnitHours, 12}, {oncall.ShiftUnitDays, 1}, {oncall.ShiftUnitWeeks, 1}, {oncall.ShiftUnitHours, 8}, {oncall.ShiftUnitDays, 2}}
	for i := range ScheduleRotations {
		u := units[i%len(units)]
		s.Rotations = append(s.Rotations, oncall.Rotation{
			ID: uuid.New(), Name: fmt.Sprintf("rotation %d", i), Participants: people[i*5 : i*5+5],
			ShiftLength: u.length, ShiftUnit: u.unit, Start: year.AddDate(-1, 0, i).Add(7 * time.Hour),
		})
	}
	for i := range ScheduleRules {
		w := []oncall.Window{
			{Weekdays: []time.Weekday{time.Monday, time.Wednesday, time.Friday}, Start: oncall.TimeOfDay{Hour: 19}, End: oncall.TimeOfDay{Hour: 7}},
			{Weekdays: []time.Weekday{time.Saturday, time.Sunday}, Start: oncall.TimeOfDay{Hour: 8}, End: oncall.TimeOfDay{Hour: 20}},
		}
		if i < 10 {
			s.Rules = append(s.Rules, oncall.Rule{ID: uuid.New(), RotationID: &s.Rotations[i].ID, Windows: w})
		} else {
			s.Rules = append(s.Rules, oncall.Rule{ID: uuid.New(), UserID: &people[rng.IntN(len(people))], Windows: w[:1]})
		}
	}
	for i := 0; len(s.Overrides) < ScheduleOverrides; i++ {
		if i > 100*ScheduleOverrides {
			panic("BigSchedule: cannot place the overrides")
		}
		start := year.Add(time.Duration(rng.Int64N(int64(365 * 24 * time.Hour)))).Truncate(time.Minute)
		o := oncall.Override{ID: uuid.New(), Start: start, End: start.Add(time.Duration(1+rng.IntN(48)) * time.Hour)}
		a, b := people[rng.IntN(len(people))], people[rng.IntN(len(people))]
		switch {
		case i%3 == 0:
			o.Kind, o.AddUserID = oncall.OverrideAdd, &a
		case i%3 == 1:
			o.Kind, o.RemoveUserID = oncall.OverrideRemove, &a
		case a != b:
			o.Kind, o.AddUserID, o.RemoveUserID = oncall.OverrideReplace, &a, &b
		default:
			o.Kind, o.AddUserID = oncall.OverrideAdd, &a
		}
		if oncall.ValidateOverride(s.Overrides, o) != nil {
			continue
		}
		s.Overrides = append(s.Overrides, o)
	}
	return s, year
}

// Instants returns n instants spread at random over the year from year.
func Instants(year time.Time, n int, seed uint64) []time.Time {
	rng := rand.New(rand.NewPCG(seed, seed+1))
	ts := make([]time.Time, n)
	for i := range ts {
		ts[i] = year.Add(time.Duration(rng.Int64N(int64(365 * 24 * time.Hour))))
	}
	return ts
}

// StoreSchedule saves s through the oncall store, the way the API does
// (one transaction per part, each checked and audited), and returns the
// stored schedule's id. Rotation and rule ids change on the way; the stored
// schedule is otherwise s.
func StoreSchedule(ctx context.Context, st *oncall.Store, by audit.Actor, s oncall.Schedule) (uuid.UUID, error) {
	info, err := st.CreateSchedule(ctx, by, oncall.NewSchedule{Name: s.Name + " " + uuid.NewString()[:8], TimeZone: s.TimeZone})
	if err != nil {
		return uuid.Nil, fmt.Errorf("schedule: %w", err)
	}
	rotationIDs := map[uuid.UUID]uuid.UUID{}
	for _, r := range s.Rotations {
		stored, err := st.AddRotation(ctx, by, info.ID, r)
		if err != nil {
			return uuid.Nil, fmt.Errorf("rotation: %w", err)
		}
		rotationIDs[r.ID] = stored.ID
	}
	for _, r := range s.Rules {
		if r.RotationID != nil {
			id, ok := rotationIDs[*r.RotationID]
			if !ok {
				return uuid.Nil, errors.New("rule: unknown rotation")
			}
			r.RotationID = &id
		}
		if _, err := st.AddRule(ctx, by, info.ID, r); err != nil {
			return uuid.Nil, fmt.Errorf("rule: %w", err)
		}
	}
	for _, o := range s.Overrides {
		if _, err := st.AddOverride(ctx, by, info.ID, o); err != nil {
			return uuid.Nil, fmt.Errorf("override: %w", err)
		}
	}
	return info.ID, nil
}
