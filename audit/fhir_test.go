package audit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/internal/pgtest"
)

// strictFHIR decodes v's JSON into the R4 model with unknown fields refused:
// a misspelt element, or a Coding where R4 wants a CodeableConcept, fails.
func strictFHIR(t *testing.T, v map[string]any, into any) {
	t.Helper()
	if v["resourceType"] == nil {
		t.Fatal("no resourceType")
	}
	c := map[string]any{}
	for k, x := range v {
		if k != "resourceType" { // the model writes it, it does not read it
			c[k] = x
		}
	}
	b, _ := json.Marshal(c)
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(into); err != nil {
		t.Fatalf("not R4: %v\n%s", err, b)
	}
}

func TestAuditEventIsR4(t *testing.T) {
	t.Parallel()
	user := uuid.New()
	ref, mrn := "Patient/123", "http://hospital.example.org/mrn|MRN-1"
	for _, tc := range []struct {
		name            string
		e               audit.Event
		action, outcome string
		profile         string
		patient         bool
	}{
		{"read", audit.Event{ID: 1, ActorID: &user, ClientAddr: "192.0.2.1", Action: "thread.read", ObjectType: "thread",
			ObjectID: uuid.NewString(), Outcome: audit.Success, PatientRef: &ref}, "R", "0", "PatientRead", true},
		{"listing by identifier", audit.Event{ID: 2, ActorID: &user, Action: "thread.list", ObjectType: "thread",
			Outcome: audit.Success, PatientRef: &mrn, Details: map[string]any{"count": float64(3)}}, "E", "0", "PatientQuery", true},
		{"refused", audit.Event{ID: 3, ActorID: &user, Action: "message.create", ObjectType: "message", Outcome: audit.Denied,
			Details: map[string]any{"reason": "only current members of this thread may do this"}}, "C", "4", "Create", false},
		{"system", audit.Event{ID: 4, Action: "retention.purge", ObjectType: "retention_policy", Outcome: audit.Success}, "D", "0", "Delete", false},
		{"break the glass", audit.Event{ID: 5, ActorID: &user, Action: "emergency_access.grant", ObjectType: "emergency_access",
			Outcome: audit.Success, PatientRef: &ref, Details: map[string]any{"reason": "rapid response"}}, "C", "0", "PatientCreate", true},
		{"login", audit.Event{ID: 6, ActorID: &user, Action: "auth.login", Outcome: audit.Failure}, "E", "4", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.e.At = time.Now()
			res := audit.AuditEvent(tc.e)
			var ae fhir.AuditEvent
			strictFHIR(t, res, &ae)
			if ae.Action == nil || ae.Action.Code() != tc.action || ae.Outcome == nil || ae.Outcome.Code() != tc.outcome {
				t.Errorf("action %v outcome %v, want %s %s", ae.Action, ae.Outcome, tc.action, tc.outcome)
			}
			if ae.Recorded == "" || ae.Type.Code == nil || len(ae.Agent) != 1 || ae.Source.Observer.Display == nil {
				t.Errorf("required elements missing: %+v", ae)
			}
			if got := ae.Agent[0].Who; (tc.e.ActorID != nil) != (got.Identifier != nil) || ae.Agent[0].Requestor != (tc.e.ActorID != nil) {
				t.Errorf("agent %+v", ae.Agent[0])
			}
			if tc.profile != "" && (ae.Meta == nil || len(ae.Meta.Profile) != 1 ||
				ae.Meta.Profile[0] != "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit."+tc.profile) {
				t.Errorf("profile %+v, want %s", ae.Meta, tc.profile)
			}
			patients := 0
			for _, en := range ae.Entity {
				if en.Role != nil && *en.Role.Code == "1" {
					patients++
				}
			}
			if (patients == 1) != tc.patient {
				t.Errorf("%d patient entities", patients)
			}
			if (tc.e.Action == "emergency_access.grant") != (len(ae.PurposeOfEvent) == 1) {
				t.Errorf("purposeOfEvent %+v", ae.PurposeOfEvent)
			}
		})
	}
	b := audit.Bundle([]audit.Event{{ID: 9, At: time.Now(), Action: "page.read", Outcome: audit.Success}}, "https://x/api/v1/audit", "https://x/api/v1/audit?_after=9")
	var bundle fhir.Bundle
	strictFHIR(t, b, &bundle)
	if bundle.Type != fhir.BundleTypeSearchset || len(bundle.Entry) != 1 || len(bundle.Link) != 2 {
		t.Errorf("bundle %+v", bundle)
	}
}

// TestActionCodeMatchesSearch: the action= search (SQL) and the resources
// (Go) agree on every action's code.
func TestActionCodeMatchesSearch(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	want := map[string]string{"thread.read": "R", "attachment.download": "R", "message.create": "C",
		"message.edit": "U", "message.recall": "D", "thread.list": "E", "auth.login": "E", "audit.purge": "D",
		"thread.member_remove": "U", "emergency_access.grant": "C"}
	for action, code := range want {
		if got := audit.ActionCode(action); got != code {
			t.Errorf("%s: %s, want %s", action, got, code)
		}
		if err := audit.Record(ctx, db.Pool, audit.System, audit.Entry{Action: action}); err != nil {
			t.Fatal(err)
		}
	}
	for _, code := range []string{"C", "R", "U", "D", "E"} {
		evs, err := audit.List(ctx, db.Pool, audit.Filter{ActionCode: code})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, c := range want {
			if c == code {
				n++
			}
		}
		if len(evs) != n {
			t.Errorf("action=%s found %d, want %d", code, len(evs), n)
		}
		for _, e := range evs {
			if want[e.Action] != code {
				t.Errorf("action=%s found %s", code, e.Action)
			}
		}
	}
}
