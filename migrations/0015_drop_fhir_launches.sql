-- The EHR launch has one implementation now, the web client's, whose state
-- (random state and PKCE verifier) rides in a cookie sealed by the keyring,
-- so any instance finishes it; the table that held launches in flight for
-- the second implementation is no longer used.
DROP TABLE fhir_launches;
