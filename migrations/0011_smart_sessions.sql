-- Sessions opened by an EHR launch of the patient-chart view (SMART on FHIR):
-- the EHR's authorization server vouched for the clinician.
ALTER TABLE sessions DROP CONSTRAINT sessions_method_check;
ALTER TABLE sessions ADD CONSTRAINT sessions_method_check
    CHECK (method IN ('password', 'password+totp', 'password+recovery', 'oidc', 'smart'));
