package fhir_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/uuid"

	"github.com/callroom/callroom/fhir"
)

// syntheaDir is where the Synthea patient bundle lives: a copy in
// testdata/synthea (from the project's shared test data, Apache-2.0, see its
// NOTICE), so a fresh clone tests without anything beside it;
// CALLROOM_SYNTHEA_DIR points at another set with the same file.
func syntheaDir(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("CALLROOM_SYNTHEA_DIR"); d != "" {
		return d
	}
	return filepath.Join("testdata", "synthea")
}

// A realistic patient (a Synthea transaction bundle, loaded into the
// engine) is admitted: one of their Encounters turns in-progress, the
// patient gets a thread, and the Synthea practitioner, whose NPI no user
// has, is listed as unmatched rather than guessed.
func TestSyntheaPatientAdmitted(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join(syntheaDir(t), "Abdul_Koepp_e925b0f3-8006-43f6-aa31-94bd215e55e7.json"))
	if err != nil {
		t.Fatal(err)
	}
	e := start(t, fhir.Subscription{Name: "enc", Flavor: fhir.RestHookPayload, Criteria: "Encounter?status=in-progress", Secret: secret})
	var bundle map[string]any
	if err := json.Unmarshal(raw, &bundle); err != nil {
		t.Fatal(err)
	}
	status, out := e.ehr.Do("POST", "", bundle)
	if status != 200 {
		t.Fatalf("loading the Synthea bundle: %d %v", status, out["issue"])
	}
	_, found := e.ehr.Do("GET", "Encounter?_count=1&_sort=-date", nil)
	enc := found["entry"].([]any)[0].(map[string]any)["resource"].(map[string]any)
	pat := enc["subject"].(map[string]any)["reference"].(string)
	prac := enc["participant"].([]any)[0].(map[string]any)["individual"].(map[string]any)["reference"].(string)
	enc["status"] = "in-progress"
	e.ehr.Update(enc)
	encRef := "Encounter/" + enc["id"].(string)
	eventually(t, "the Synthea patient's thread", func() bool { id, _, _ := e.threadOf(pat, encRef); return id != uuid.Nil })
	un, err := e.in.Server.FHIR.Unmatched(context.Background())
	if err != nil || len(un) != 1 || un[0].PractitionerRef != prac {
		t.Fatalf("unmatched = %+v, %v; want %s", un, err, prac)
	}
}
