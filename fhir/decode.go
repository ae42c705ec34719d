package fhir

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// A Rejection is a notification or resource callroom refuses: the HTTP
// status and the OperationOutcome issue it answers with.
type Rejection struct {
	Status      int
	Code        string // OperationOutcome issue code: invalid, structure, not-supported, security, too-long
	Diagnostics string // says what is wrong, never repeats the content
}

func (r *Rejection) Error() string { return r.Code + ": " + r.Diagnostics }

func reject(status int, code, format string, args ...any) *Rejection {
	return &Rejection{Status: status, Code: code, Diagnostics: fmt.Sprintf(format, args...)}
}

var resourceTypeName = regexp.MustCompile(`^[A-Z][A-Za-z]{1,63}$`)

// resourceTypeOf reads resourceType from raw JSON, before any decoding:
// golang-fhir-models' Unmarshal functions accept a resource of any type.
func resourceTypeOf(raw []byte) (string, error) {
	var probe struct {
		ResourceType string `json:"resourceType"`
	}
	if err := json.Unmarshal(raw, &probe); err != nil {
		return "", reject(400, "structure", "body is not a JSON object: %v", err)
	}
	if probe.ResourceType == "" {
		return "", reject(400, "structure", "resourceType is missing")
	}
	if !resourceTypeName.MatchString(probe.ResourceType) {
		return "", reject(400, "structure", "resourceType is not a FHIR type name")
	}
	return probe.ResourceType, nil
}

// statusOf returns the raw status code, "" when absent: a missing code
// decodes as the enumeration's first value (an Encounter without status
// would read as "planned").
func statusOf(raw []byte) string {
	var probe struct {
		Status string `json:"status"`
	}
	json.Unmarshal(raw, &probe) //nolint:errcheck // resourceTypeOf checked it is an object
	return probe.Status
}

func decodeEncounter(raw []byte) (models.Encounter, string, error) {
	if t, err := resourceTypeOf(raw); err != nil {
		return models.Encounter{}, "", err
	} else if t != "Encounter" {
		return models.Encounter{}, "", reject(422, "invalid", "expected an Encounter, got a %s", t)
	}
	status := statusOf(raw)
	if status == "" {
		return models.Encounter{}, "", reject(422, "required", "Encounter.status is required")
	}
	e, err := models.UnmarshalEncounter(raw)
	if err != nil {
		return e, "", reject(422, "structure", "not a valid Encounter: %v", err)
	}
	if e.Id == nil || *e.Id == "" {
		return e, "", reject(422, "required", "Encounter.id is required")
	}
	return e, status, nil
}

func decodeCareTeam(raw []byte) (models.CareTeam, string, error) {
	if t, err := resourceTypeOf(raw); err != nil {
		return models.CareTeam{}, "", err
	} else if t != "CareTeam" {
		return models.CareTeam{}, "", reject(422, "invalid", "expected a CareTeam, got a %s", t)
	}
	c, err := models.UnmarshalCareTeam(raw)
	if err != nil {
		return c, "", reject(422, "structure", "not a valid CareTeam: %v", err)
	}
	if c.Id == nil || *c.Id == "" {
		return c, "", reject(422, "required", "CareTeam.id is required")
	}
	return c, statusOf(raw), nil
}

func decodePractitioner(raw []byte) (models.Practitioner, error) {
	if t, err := resourceTypeOf(raw); err != nil {
		return models.Practitioner{}, err
	} else if t != "Practitioner" {
		return models.Practitioner{}, reject(422, "invalid", "expected a Practitioner, got a %s", t)
	}
	return models.UnmarshalPractitioner(raw)
}

func decodePractitionerRole(raw []byte) (models.PractitionerRole, error) {
	if t, err := resourceTypeOf(raw); err != nil {
		return models.PractitionerRole{}, err
	} else if t != "PractitionerRole" {
		return models.PractitionerRole{}, reject(422, "invalid", "expected a PractitionerRole, got a %s", t)
	}
	return models.UnmarshalPractitionerRole(raw)
}

// decodeBundle decodes a Bundle of type want; its entries stay raw JSON,
// each decoded by its own type.
func decodeBundle(raw []byte, want models.BundleType) (models.Bundle, error) {
	if t, err := resourceTypeOf(raw); err != nil {
		return models.Bundle{}, err
	} else if t != "Bundle" {
		return models.Bundle{}, reject(422, "invalid", "expected a Bundle, got a %s", t)
	}
	var probe struct {
		Type string `json:"type"`
	}
	json.Unmarshal(raw, &probe) //nolint:errcheck
	if probe.Type != want.Code() {
		return models.Bundle{}, reject(422, "invalid", "expected a %s Bundle, got type %q", want.Code(), probe.Type)
	}
	b, err := models.UnmarshalBundle(raw)
	if err != nil {
		return b, reject(422, "structure", "not a valid Bundle: %v", err)
	}
	return b, nil
}

// lastUpdatedOf returns meta.lastUpdated, zero when absent.
func lastUpdatedOf(m *models.Meta) time.Time {
	if m == nil || m.LastUpdated == nil {
		return time.Time{}
	}
	t, _ := time.Parse(time.RFC3339Nano, *m.LastUpdated)
	return t
}

// periodCovers reports whether p (nil: always) includes now. FHIR dateTimes
// may be partial ("2024", "2024-05-01"); a partial start counts from its
// beginning and a partial end to the beginning of its period (conservative).
func periodCovers(p *models.Period, now time.Time) bool {
	if p == nil {
		return true
	}
	if p.Start != nil {
		if t, ok := parseDateTime(*p.Start); ok && now.Before(t) {
			return false
		}
	}
	if p.End != nil {
		if t, ok := parseDateTime(*p.End); ok && !now.Before(t) {
			return false
		}
	}
	return true
}

func parseDateTime(s string) (time.Time, bool) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02", "2006-01", "2006"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func isJSONEmpty(b []byte) bool { return len(bytes.TrimSpace(b)) == 0 }

// clip shortens s to at most n bytes for a text column with a length limit,
// never cutting a character in two: PostgreSQL refuses invalid UTF-8, and an
// EHR's error text is not always ASCII.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}
