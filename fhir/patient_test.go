package fhir_test

import (
	"context"
	"testing"
	"time"

	"github.com/callroom/callroom/fhir"
)

// TestPatientIdentifiersLinked: when an Encounter opens a patient's thread,
// callroom learns the patient's identifiers (MRN) from the EHR's Patient,
// and at once from a subject reference that carries an identifier too, so
// threads opened under the MRN join the patient's chart.
func TestPatientIdentifiersLinked(t *testing.T) {
	t.Parallel()
	e := start(t, fhir.Subscription{Name: "poll", Flavor: fhir.Poll, Criteria: "Encounter", Interval: time.Second})
	const sys = mrnSystem
	withMRN := "Patient/" + e.ehr.Create(map[string]any{"resourceType": "Patient",
		"identifier": []any{map[string]any{"system": sys, "value": "MRN-A"}, map[string]any{"value": "no system"}}})["id"].(string)
	e.ehr.Create(encounter(withMRN, "in-progress", "IMP"))

	bare := e.patient()
	enc := encounter(bare, "in-progress", "IMP")
	enc["subject"] = map[string]any{"reference": bare, "identifier": map[string]any{"system": sys, "value": "MRN-B"}}
	e.ehr.Create(enc)

	linkedTo := func(identifier string) string {
		var ref string
		e.in.DB.Pool.QueryRow(context.Background(), `SELECT patient_ref FROM patient_identifiers WHERE identifier = $1`, identifier).Scan(&ref) //nolint:errcheck
		return ref
	}
	eventually(t, "MRN-A read from the Patient and linked", func() bool { return linkedTo(sys+"|MRN-A") == withMRN })
	eventually(t, "MRN-B linked from the Encounter's subject", func() bool { return linkedTo(sys+"|MRN-B") == bare })
	var n int
	e.in.DB.Pool.QueryRow(context.Background(), `SELECT count(*) FROM patient_identifiers`).Scan(&n) //nolint:errcheck
	if n != 2 {
		t.Errorf("%d identifiers linked, want 2 (an identifier without a system is not one)", n)
	}
}
