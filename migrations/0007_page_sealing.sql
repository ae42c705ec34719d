-- A page's summary and body are PHI: they are now stored sealed (AES-256-GCM
-- under a data key, see package keys), not as plain text. Rows written before
-- this migration keep their plain columns and stay readable.
ALTER TABLE pages ALTER COLUMN summary DROP NOT NULL;
ALTER TABLE pages ALTER COLUMN body DROP NOT NULL;
ALTER TABLE pages ALTER COLUMN body DROP DEFAULT;
ALTER TABLE pages ADD COLUMN text_sealed bytea;
ALTER TABLE pages ADD COLUMN text_key_id uuid REFERENCES data_keys (id);
ALTER TABLE pages ADD CONSTRAINT pages_text_present CHECK (text_sealed IS NOT NULL OR summary IS NOT NULL);
