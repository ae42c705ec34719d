package inbox

import (
	"regexp"
	"strings"

	"github.com/callroom/callroom"
)

// A patient is named either by a FHIR literal reference ("Patient/123", the
// same form pages use) or by one of its identifiers in FHIR token form,
// "system|value" (e.g. "urn:oid:2.16.840.1.113883.3.1|12345" for an MRN),
// for sites that message about patients before the FHIR id is known.
var (
	patientLiteral   = regexp.MustCompile(`^Patient/[A-Za-z0-9\-.]{1,64}$`)
	encounterLiteral = regexp.MustCompile(`^Encounter/[A-Za-z0-9\-.]{1,64}$`)
	// No whitespace, no '|' (the separator) and no '%' (so a reference is
	// the same string whether or not a URL path decoded it once more).
	identifierPart = regexp.MustCompile(`^[^\s|%\x00-\x1f\x7f]+$`)
)

func checkPatientRef(field, ref string) error {
	if ref == "" {
		return callroom.Invalid(field, "is required")
	}
	if patientLiteral.MatchString(ref) {
		return nil
	}
	system, value, ok := strings.Cut(ref, "|")
	if !ok {
		return callroom.Invalid(field, "must be a FHIR reference such as Patient/123 or an identifier system|value")
	}
	if !identifierPart.MatchString(system) || len(system) > 255 {
		return callroom.Invalid(field, "identifier system must be 1-255 characters without spaces, '|' or '%%'")
	}
	if !identifierPart.MatchString(value) || len(value) > 128 {
		return callroom.Invalid(field, "identifier value must be 1-128 characters without spaces, '|' or '%%'")
	}
	return nil
}

func checkEncounterRef(field, ref string) error {
	if ref != "" && !encounterLiteral.MatchString(ref) {
		return callroom.Invalid(field, "must be a FHIR reference such as Encounter/456")
	}
	return nil
}
