-- Data keys for envelope encryption of message text and attachments (package
-- keys). PHI is sealed in the application with AES-256-GCM under a data key;
-- the data key is stored here only wrapped (encrypted) by a master key, and
-- master keys never enter the database: a copy of the database, a backup or
-- a pg_dump alone decrypts nothing.

CREATE TABLE data_keys (
    -- Chosen by the application, because the wrapping binds the data key to
    -- its id: a wrapped key copied onto another row does not unwrap.
    id            uuid PRIMARY KEY,
    -- Which master key wraps this data key. Only its name, never the key.
    master_key_id text NOT NULL CHECK (master_key_id ~ '^[A-Za-z0-9._-]{1,64}$'),
    -- version byte | 12-byte nonce | AES-256-GCM(32-byte data key) | 16-byte tag
    wrapped       bytea NOT NULL CHECK (length(wrapped) = 61),
    created_at    timestamptz NOT NULL DEFAULT now(),
    -- Last time 'callroom keys rotate' moved it under a newer master key.
    rewrapped_at  timestamptz,
    -- A retired key seals nothing new but still opens what it sealed, so it is
    -- kept as long as any row refers to it. Rows that store a sealed blob
    -- record the key's id in a column REFERENCES data_keys (id), which also
    -- stops a data key in use from being deleted.
    retired_at    timestamptz
);

-- Exactly one data key seals new data; keys.Keyring.RotateDataKey retires it
-- and inserts the next in one transaction.
CREATE UNIQUE INDEX data_keys_one_active ON data_keys ((true)) WHERE retired_at IS NULL;
