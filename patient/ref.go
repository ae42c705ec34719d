package patient

import (
	"regexp"
	"strings"

	"github.com/callroom/callroom"
)

var (
	literal = regexp.MustCompile(`^Patient/[A-Za-z0-9\-.]{1,64}$`)
	// No whitespace, no '|' (the separator) and no '%' (so a name is the
	// same string whether or not a URL path decoded it once more).
	identifierPart = regexp.MustCompile(`^[^\s|%\x00-\x1f\x7f]+$`)
)

// IsLiteral reports whether ref is a literal reference "Patient/{id}".
func IsLiteral(ref string) bool { return literal.MatchString(ref) }

// CheckRef accepts either name of a patient, "Patient/123" or "system|value";
// field names the input in the error.
func CheckRef(field, ref string) error {
	if ref == "" {
		return callroom.Invalid(field, "is required")
	}
	if literal.MatchString(ref) {
		return nil
	}
	return checkIdentifier(field, ref, "must be a FHIR reference such as Patient/123 or an identifier system|value")
}

// CheckIdentifier accepts "system|value" only.
func CheckIdentifier(field, id string) error {
	if id == "" {
		return callroom.Invalid(field, "is required")
	}
	return checkIdentifier(field, id, "must be an identifier system|value")
}

func checkIdentifier(field, id, shape string) error {
	system, value, ok := strings.Cut(id, "|")
	if !ok {
		return callroom.Invalid(field, "%s", shape)
	}
	if !identifierPart.MatchString(system) || len(system) > 255 {
		return callroom.Invalid(field, "identifier system must be 1-255 characters without spaces, '|' or '%%'")
	}
	if !identifierPart.MatchString(value) || len(value) > 128 {
		return callroom.Invalid(field, "identifier value must be 1-128 characters without spaces, '|' or '%%'")
	}
	return nil
}

// Identifier is the token form of a FHIR Identifier, or "" when it lacks a
// system or value or cannot be written as a token.
func Identifier(system, value string) string {
	id := system + "|" + value
	if CheckIdentifier("", id) != nil {
		return ""
	}
	return id
}
