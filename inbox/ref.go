package inbox

import (
	"regexp"

	"github.com/callroom/callroom"
	"github.com/callroom/callroom/patient"
)

// A patient is named either by a FHIR literal reference ("Patient/123", the
// same form pages use) or by one of its identifiers in FHIR token form,
// "system|value" (see package patient, which also knows which names belong
// to the same patient).
var (
	checkPatientRef  = patient.CheckRef
	encounterLiteral = regexp.MustCompile(`^Encounter/[A-Za-z0-9\-.]{1,64}$`)
)

func checkEncounterRef(field, ref string) error {
	if ref != "" && !encounterLiteral.MatchString(ref) {
		return callroom.Invalid(field, "must be a FHIR reference such as Encounter/456")
	}
	return nil
}
