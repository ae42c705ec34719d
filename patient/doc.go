// Package patient knows the names callroom gives a patient and which of them
// belong together.
//
// Callroom never stores a patient's demographics; it refers to a patient the
// way FHIR does, either by a literal reference to the EHR's Patient resource
// ("Patient/123", what pages, encounters and the SMART launch carry) or by one
// of the patient's identifiers in FHIR token form ("system|value", e.g. the
// MRN "urn:oid:2.16.840.1.113883.3.1|12345"), which nurses and email-only
// systems often know before the FHIR id. The patient_identifiers table records
// which identifiers belong to which Patient, as the EHR stated it (read when a
// clinician launches callroom from the chart, or carried by an Encounter's
// subject) or as an administrator linked them. Threads, emergency access and
// the patient's access report then match a patient under any of its names:
// see SameAs.
package patient
