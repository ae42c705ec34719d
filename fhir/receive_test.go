package fhir_test

import (
	"context"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/callroom/callroom/fhir"
)

// An Encounter that starts opens its patient's thread with the
// participants matched by NPI or email; an unknown practitioner is listed,
// not guessed; the finished Encounter archives the thread. Both payload
// flavors, sent by the real engine.
func TestEncounterOpensAndArchivesThread(t *testing.T) {
	t.Parallel()
	for _, flavor := range []fhir.Flavor{fhir.Medplum, fhir.RestHookPayload} {
		t.Run(string(flavor), func(t *testing.T) {
			t.Parallel()
			e := start(t, fhir.Subscription{Name: "enc", Flavor: flavor, Criteria: "Encounter", Secret: secret})
			drA, prA := e.clinician("Dr A", "physician", true)
			nurseB, prB := e.clinician("Nurse B", "nurse", false)
			stranger := e.ehr.Create(map[string]any{"resourceType": "Practitioner",
				"identifier": []any{map[string]any{"system": fhir.NPISystem, "value": "1999999999"}}})
			strangerRef := "Practitioner/" + stranger["id"].(string)
			pat := e.patient()

			enc := e.ehr.Create(encounter(pat, "in-progress", "IMP", prA, prB, strangerRef))
			encRef := "Encounter/" + enc["id"].(string)
			var thread uuid.UUID
			eventually(t, "the thread with both clinicians", func() bool {
				id, archived, members := e.threadOf(pat, encRef)
				thread = id
				return id != uuid.Nil && !archived && sameMembers(members, drA.User.ID, nurseB.User.ID)
			})
			un, err := e.in.Server.FHIR.Unmatched(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if len(un) != 1 || un[0].PractitionerRef != strangerRef || un[0].NPI != "1999999999" {
				t.Fatalf("unmatched = %+v, want only %s", un, strangerRef)
			}
			admin := e.in.User("Admin", "admin")
			list := admin.Must(200, "GET", "/api/v1/fhir/unmatched-practitioners", nil)["practitioners"].([]any)
			if len(list) != 1 || list[0].(map[string]any)["practitioner_ref"] != strangerRef {
				t.Fatalf("unmatched practitioners = %v", list)
			}
			nurseB.Must(403, "GET", "/api/v1/fhir/unmatched-practitioners", nil)
			// The members see it through the API.
			r := drA.Must(200, "GET", "/api/v1/threads/"+thread.String(), nil)
			if r["patient_ref"] != pat || r["encounter_ref"] != encRef {
				t.Fatalf("thread = %v", r)
			}

			// Nurse B leaves the encounter: B leaves the thread.
			enc["participant"] = enc["participant"].([]any)[:1]
			enc = e.ehr.Update(enc)
			eventually(t, "nurse B removed", func() bool {
				_, _, members := e.threadOf(pat, encRef)
				return sameMembers(members, drA.User.ID)
			})

			enc["status"] = "finished"
			e.ehr.Update(enc)
			eventually(t, "the thread archived", func() bool {
				_, archived, _ := e.threadOf(pat, encRef)
				return archived
			})
			if strings.Contains(e.in.LogText(), pat) || strings.Contains(e.in.LogText(), encRef) {
				t.Error("a patient or encounter reference was logged")
			}
			for _, s := range e.ehr.Sent() {
				if s.Status != 200 {
					t.Errorf("notification %s %s answered %d: %s %s", s.Method, s.URL, s.Status, s.Answer, s.Error)
				}
			}
		})
	}
}
