-- A patient is named in callroom either by a FHIR literal reference
-- ("Patient/123") or by an identifier in token form ("system|value", e.g. an
-- MRN), since nurses and email-only systems often know the MRN before the
-- FHIR id. This table says which identifiers belong to which Patient, as the
-- EHR (or an administrator) stated it, so that the chart view, emergency
-- access and the patient's access report find everything under either name.
-- An identifier names at most one patient; when the EHR moves it (a merge),
-- the row moves with it.
CREATE TABLE patient_identifiers (
	identifier  text PRIMARY KEY,
	patient_ref text NOT NULL CHECK (patient_ref ~ '^Patient/[A-Za-z0-9\-.]{1,64}$'),
	source      text NOT NULL CHECK (source IN ('ehr', 'admin')),
	linked_at   timestamptz NOT NULL DEFAULT now(),
	CHECK (identifier LIKE '%|%')
);
CREATE INDEX patient_identifiers_patient ON patient_identifiers (patient_ref);
