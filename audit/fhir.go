package audit

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// The audit trail leaves callroom as FHIR R4 AuditEvent resources, shaped
// after the IHE Basic Audit Log Patterns (BALP): a security officer's SIEM or
// an EHR's audit repository reads them without knowing callroom. The JSON is
// built here by hand: golang-fhir-models writes every [x] choice and cannot
// be trusted to send valid FHIR.

// Code systems used in the resources.
const (
	SystemAuditEventType = "http://terminology.hl7.org/CodeSystem/audit-event-type"
	SystemRestful        = "http://hl7.org/fhir/restful-interaction"
	SystemAction         = "urn:callroom:audit-action" // callroom's own action names
	SystemUser           = "urn:callroom:user"
	SystemEntityType     = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
	SystemObjectRole     = "http://terminology.hl7.org/CodeSystem/object-role"
	SystemSourceType     = "http://terminology.hl7.org/CodeSystem/security-source-type"
	SystemParticipation  = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
	SystemActReason      = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
	balpProfile          = "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit."
)

// crude maps the last word of a callroom action to the AuditEvent.action
// code (Create, Read, Update, Delete, Execute), the RESTful interaction and
// the BALP profile. Actions not listed are E (execute).
var crude = map[string]struct{ code, interaction, profile string }{
	"create":        {"C", "create", "Create"},
	"upload":        {"C", "create", "Create"},
	"grant":         {"C", "create", "Create"},
	"read":          {"R", "read", "Read"},
	"download":      {"R", "read", "Read"},
	"versions":      {"R", "vread", "Read"},
	"list":          {"E", "search-type", "Query"},
	"search":        {"E", "search-type", "Query"},
	"edit":          {"U", "update", "Update"},
	"update":        {"U", "update", "Update"},
	"set":           {"U", "update", "Update"},
	"mark_read":     {"U", "update", "Update"},
	"acknowledge":   {"U", "update", "Update"},
	"review":        {"U", "update", "Update"},
	"member_add":    {"U", "update", "Update"},
	"recall":        {"D", "delete", "Delete"},
	"delete":        {"D", "delete", "Delete"},
	"member_remove": {"U", "update", "Update"},
	"purge":         {"D", "delete", "Delete"},
	"revoke":        {"D", "delete", "Delete"},
}

func verb(action string) string {
	if i := strings.LastIndexByte(action, '.'); i >= 0 {
		return action[i+1:]
	}
	return action
}

// ActionCode is the AuditEvent.action code of a callroom action.
func ActionCode(action string) string {
	if c, ok := crude[verb(action)]; ok {
		return c.code
	}
	return "E"
}

// actionCodeSQL is ActionCode as a SQL expression over audit_events.action,
// generated from the same table, so the action= search filters in SQL.
func actionCodeSQL() string {
	verbs := make([]string, 0, len(crude))
	for v := range crude {
		verbs = append(verbs, v)
	}
	sort.Strings(verbs)
	var b strings.Builder
	b.WriteString(`(CASE regexp_replace(action, '^.*\.', '')`)
	for _, v := range verbs {
		fmt.Fprintf(&b, ` WHEN '%s' THEN '%s'`, v, crude[v].code)
	}
	b.WriteString(` ELSE 'E' END)`)
	return b.String()
}

// outcomeCode is AuditEvent.outcome: 0 success, 4 minor failure (refused or
// failed; nothing happened), as BALP uses them.
func outcomeCode(o Outcome) string {
	if o == Success {
		return "0"
	}
	return "4"
}

type coding struct {
	System  string `json:"system"`
	Code    string `json:"code"`
	Display string `json:"display,omitempty"`
}

// patientWhat is the Reference for a patient_ref: a literal reference
// (Patient/123) or a logical one (system|value).
func patientWhat(ref string) map[string]any {
	if system, value, ok := strings.Cut(ref, "|"); ok {
		return map[string]any{"identifier": map[string]any{"system": system, "value": value}, "type": "Patient"}
	}
	return map[string]any{"reference": ref}
}

// AuditEvent returns e as a FHIR R4 AuditEvent resource.
func AuditEvent(e Event) map[string]any {
	c, ok := crude[verb(e.Action)]
	if !ok {
		c = struct{ code, interaction, profile string }{"E", "", ""}
	}
	subtype := []coding{{System: SystemAction, Code: e.Action}}
	if c.interaction != "" {
		subtype = append(subtype, coding{System: SystemRestful, Code: c.interaction})
	}
	res := map[string]any{
		"resourceType": "AuditEvent",
		"id":           fmt.Sprint(e.ID),
		"type":         coding{System: SystemAuditEventType, Code: "rest", Display: "RESTful Operation"},
		"subtype":      subtype,
		"action":       c.code,
		"recorded":     e.At.UTC().Format(time.RFC3339Nano),
		"outcome":      outcomeCode(e.Outcome),
		"source": map[string]any{
			"observer": map[string]any{"display": "callroom"},
			"type":     []coding{{System: SystemSourceType, Code: "4", Display: "Application Server"}},
		},
	}
	if c.profile != "" {
		prof := c.profile
		if e.PatientRef != nil && prof != "Query" {
			prof = "PatientRead"
			switch c.code {
			case "C":
				prof = "PatientCreate"
			case "U":
				prof = "PatientUpdate"
			case "D":
				prof = "PatientDelete"
			}
		} else if e.PatientRef != nil {
			prof = "PatientQuery"
		}
		res["meta"] = map[string]any{"profile": []string{balpProfile + prof}}
	}
	if e.Outcome != Success {
		if r, ok := e.Details["reason"].(string); ok {
			res["outcomeDesc"] = r
		} else {
			res["outcomeDesc"] = string(e.Outcome)
		}
	}
	if strings.HasPrefix(e.Action, "emergency_access.") || e.Details["emergency_access"] != nil {
		res["purposeOfEvent"] = []map[string]any{{"coding": []coding{{System: SystemActReason, Code: "ETREAT", Display: "Emergency Treatment"}}}}
	}
	var agents []map[string]any
	if e.ActorID != nil {
		a := map[string]any{
			"type":      map[string]any{"coding": []coding{{System: SystemParticipation, Code: "IRCP", Display: "information recipient"}}},
			"who":       map[string]any{"identifier": map[string]any{"system": SystemUser, "value": e.ActorID.String()}},
			"requestor": true,
		}
		if e.ClientAddr != "" {
			a["network"] = map[string]any{"address": e.ClientAddr, "type": "2"}
		}
		agents = append(agents, a)
	} else {
		agents = append(agents, map[string]any{"who": map[string]any{"display": "callroom"}, "requestor": false})
	}
	res["agent"] = agents
	var entities []map[string]any
	if e.PatientRef != nil {
		entities = append(entities, map[string]any{
			"what": patientWhat(*e.PatientRef),
			"type": coding{System: SystemEntityType, Code: "1", Display: "Person"},
			"role": coding{System: SystemObjectRole, Code: "1", Display: "Patient"},
		})
	}
	if e.ObjectType != "" || len(e.Details) > 0 {
		obj := map[string]any{"type": coding{System: SystemEntityType, Code: "2", Display: "System Object"}}
		if e.ObjectType != "" {
			what := map[string]any{"display": e.ObjectType}
			if e.ObjectID != "" {
				what["identifier"] = map[string]any{"system": "urn:callroom:" + e.ObjectType, "value": e.ObjectID}
			}
			obj["what"] = what
		}
		if len(e.Details) > 0 {
			keys := make([]string, 0, len(e.Details))
			for k := range e.Details {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			var detail []map[string]any
			for _, k := range keys {
				v := e.Details[k]
				s, ok := v.(string)
				if !ok {
					s = fmt.Sprint(v)
				}
				detail = append(detail, map[string]any{"type": k, "valueString": s})
			}
			obj["detail"] = detail
		}
		entities = append(entities, obj)
	}
	if len(entities) > 0 {
		res["entity"] = entities
	}
	return res
}

// Bundle returns events as a FHIR searchset Bundle; next, when not empty, is
// the URL of the following page.
func Bundle(events []Event, self, next string) map[string]any {
	entries := make([]map[string]any, 0, len(events))
	for _, e := range events {
		entries = append(entries, map[string]any{"resource": AuditEvent(e), "search": map[string]any{"mode": "match"}})
	}
	links := []map[string]any{{"relation": "self", "url": self}}
	if next != "" {
		links = append(links, map[string]any{"relation": "next", "url": next})
	}
	return map[string]any{
		"resourceType": "Bundle",
		"type":         "searchset",
		"timestamp":    time.Now().UTC().Format(time.RFC3339Nano),
		"link":         links,
		"entry":        entries,
	}
}
