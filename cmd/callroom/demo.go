package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/google/uuid"

	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/auth"
	"github.com/callroom/callroom/escalation"
	"github.com/callroom/callroom/internal/server"
	"github.com/callroom/callroom/oncall"
)

// demoPassword is the password of every demo user. The demo is for a
// developer's machine; --demo refuses to seed a database that has users.
const demoPassword = "callroom-demo"

type demoLogin struct{ email, role string }

// seedDemo fills an empty database with a small hospital: a nurse, three
// physicians, a scheduler, an administrator and an auditor, and on-call
// schedules, escalation policies and services for cardiology and the
// hospitalist service.
func seedDemo(ctx context.Context, srv *server.Server) ([]demoLogin, error) {
	users, err := srv.Auth.Users(ctx, auth.UserFilter{})
	if err != nil {
		return nil, err
	}
	var logins []demoLogin
	people := []struct {
		email, name, npi string
		roles            []string
	}{
		{"nina.nurse@demo.callroom.test", "Nina Alvarez, RN", "", []string{"nurse"}},
		{"ana.cruz@demo.callroom.test", "Dr. Ana Cruz", "1234567893", []string{"physician"}},
		{"ben.okafor@demo.callroom.test", "Dr. Ben Okafor", "1245319599", []string{"physician"}},
		{"li.wei@demo.callroom.test", "Dr. Li Wei", "", []string{"physician"}},
		{"sam.scheduler@demo.callroom.test", "Sam Patel", "", []string{"scheduler"}},
		{"admin@demo.callroom.test", "Avery Admin", "", []string{"admin"}},
		{"audrey.auditor@demo.callroom.test", "Audrey Kim", "", []string{"auditor"}},
	}
	for _, p := range people {
		logins = append(logins, demoLogin{p.email, p.roles[0]})
	}
	if len(users) > 0 {
		return logins, nil // already seeded (or a real database): leave it alone
	}
	by := audit.Actor{ClientAddr: "demo"}
	pw := demoPassword
	ids := map[string]uuid.UUID{}
	for _, p := range people {
		in := auth.NewUser{Email: p.email, Name: p.name, Roles: p.roles, TimeZone: "America/Chicago", Password: &pw}
		if p.npi != "" {
			npi := p.npi
			in.NPI = &npi
		}
		u, err := srv.Auth.CreateUser(ctx, by, in)
		if err != nil {
			return nil, fmt.Errorf("user %s: %w", p.email, err)
		}
		ids[p.email] = u.ID
	}
	chicago, _ := time.LoadLocation("America/Chicago")
	now := time.Now().In(chicago)
	monday := time.Date(now.Year(), now.Month(), now.Day()-int(now.Weekday()+6)%7, 7, 0, 0, 0, chicago)

	cardio, err := srv.OnCall.CreateSchedule(ctx, by, oncall.NewSchedule{Name: "Cardiology on call",
		Description: "Cardiology attending; weekly hand-off Monday 07:00", TimeZone: "America/Chicago"})
	if err != nil {
		return nil, err
	}
	if _, err := srv.OnCall.AddRotation(ctx, by, cardio.ID, oncall.Rotation{Name: "Attendings",
		Participants: []uuid.UUID{ids["ana.cruz@demo.callroom.test"], ids["ben.okafor@demo.callroom.test"]},
		ShiftLength:  1, ShiftUnit: "weeks", Start: monday}); err != nil {
		return nil, err
	}
	hosp, err := srv.OnCall.CreateSchedule(ctx, by, oncall.NewSchedule{Name: "Hospitalist nights",
		Description: "Night hospitalist 19:00-07:00", TimeZone: "America/Chicago"})
	if err != nil {
		return nil, err
	}
	liwei := ids["li.wei@demo.callroom.test"]
	if _, err := srv.OnCall.AddRule(ctx, by, hosp.ID, oncall.Rule{UserID: &liwei,
		Windows: []oncall.Window{{Start: oncall.TimeOfDay{Hour: 19}, End: oncall.TimeOfDay{Hour: 7}}}}); err != nil {
		return nil, err
	}
	cardioPolicy, err := srv.Pages.CreatePolicy(ctx, by, escalation.NewPolicy{
		Name: "Cardiology", Description: "On-call attending, then the other attending, then the house supervisor",
		Repeat: 1, Fallback: &escalation.Target{UserID: ptr(ids["admin@demo.callroom.test"])},
		Steps: []escalation.Step{
			{DelaySeconds: 300, Targets: []escalation.Target{{ScheduleID: &cardio.ID}}},
			{DelaySeconds: 300, Targets: []escalation.Target{{UserID: ptr(ids["ana.cruz@demo.callroom.test"])}, {UserID: ptr(ids["ben.okafor@demo.callroom.test"])}}},
		},
	})
	if err != nil {
		return nil, err
	}
	if _, err := srv.Pages.CreateService(ctx, by, escalation.NewService{Name: "Cardiology", EscalationPolicyID: cardioPolicy.ID,
		Description: "Cardiology consults and chest pain", EmailAlias: ptr("cardiology")}); err != nil {
		return nil, err
	}
	hospPolicy, err := srv.Pages.CreatePolicy(ctx, by, escalation.NewPolicy{
		Name: "Hospitalist", Description: "Night hospitalist, then the house supervisor",
		Fallback: &escalation.Target{UserID: ptr(ids["admin@demo.callroom.test"])},
		Steps:    []escalation.Step{{DelaySeconds: 600, Targets: []escalation.Target{{ScheduleID: &hosp.ID}}}},
	})
	if err != nil {
		return nil, err
	}
	if _, err := srv.Pages.CreateService(ctx, by, escalation.NewService{Name: "Hospitalist", EscalationPolicyID: hospPolicy.ID,
		Description: "Cross-cover for admitted patients overnight", EmailAlias: ptr("hospitalist")}); err != nil {
		return nil, err
	}
	return logins, nil
}

func ptr[T any](v T) *T { return &v }

func printDemo(w io.Writer, publicURL string, logins []demoLogin) {
	fmt.Fprintf(w, "\ncallroom demo is ready at %s\n", publicURL)
	fmt.Fprintf(w, "  Open %s/ in a browser (paging console, inbox, schedules, admin)\n", publicURL)
	fmt.Fprintf(w, "  API document: %s/api/openapi.json\n", publicURL)
	fmt.Fprintf(w, "  Sign in, in the browser or with POST %s/api/v1/auth/login, as one of these (password %q):\n", publicURL, demoPassword)
	for _, l := range logins {
		fmt.Fprintf(w, "    %-36s %s\n", l.email, l.role)
	}
	fmt.Fprintf(w, "  Or make an API token: bin/callroom token create --email admin@demo.callroom.test\n\n")
}
