-- Person authentication and session safeguards (HIPAA 164.312(d), (a)(2)(iii)):
-- TOTP second factor, recovery codes, login lockout, the admin's security
-- settings, single sign-on identities, and rate limit windows.

-- A user's TOTP authenticator. The shared secret is sealed at rest (package
-- keys, associated data "totp:<user_id>"); confirmed_at is NULL until the
-- user proved the authenticator works. last_step is the newest 30-second
-- time step a code was accepted for: a code is accepted only for a later
-- step, so a code seen over a shoulder or in a proxy log cannot be replayed,
-- even on another instance.
CREATE TABLE user_totp (
    user_id       uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    secret_sealed bytea NOT NULL,
    secret_key_id uuid NOT NULL REFERENCES data_keys (id),
    created_at    timestamptz NOT NULL DEFAULT now(),
    confirmed_at  timestamptz,
    last_step     bigint NOT NULL DEFAULT 0
);

-- One-time recovery codes, shown once at enrolment; only their SHA-256 is
-- kept (each code holds 80 random bits, so a fast hash is enough).
CREATE TABLE user_recovery_codes (
    user_id   uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash bytea NOT NULL,
    used_at   timestamptz,
    PRIMARY KEY (user_id, code_hash)
);

-- Failed logins in a row, and the lock they lead to (164.308(a)(5)(ii)(C)).
-- A failure more than the lockout period after the previous one starts the
-- count again, so a few typos a month never add up to a lock.
CREATE TABLE login_lockouts (
    user_id         uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    failures        integer NOT NULL DEFAULT 0 CHECK (failures >= 0),
    last_failure_at timestamptz NOT NULL DEFAULT now(),
    locked_until    timestamptz
);

-- The administrator's security settings: a single row.
CREATE TABLE security_settings (
    id                 boolean PRIMARY KEY DEFAULT true CHECK (id),
    mfa_required_all   boolean NOT NULL DEFAULT false,
    mfa_required_roles text[] NOT NULL DEFAULT '{}'
                       CHECK (mfa_required_roles <@ ARRAY['nurse','physician','scheduler','admin','auditor']::text[]),
    lockout_threshold  integer NOT NULL DEFAULT 5 CHECK (lockout_threshold BETWEEN 1 AND 100),
    lockout_minutes    integer NOT NULL DEFAULT 15 CHECK (lockout_minutes BETWEEN 1 AND 1440),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
INSERT INTO security_settings DEFAULT VALUES;

-- How a session was opened: by password (with or without a second factor)
-- or by single sign-on, where the identity provider owns the second factor.
ALTER TABLE sessions ADD COLUMN method text NOT NULL DEFAULT 'password'
    CHECK (method IN ('password', 'password+totp', 'password+recovery', 'oidc'));

-- Links between an OpenID Connect identity and a callroom user, made on the
-- first sign-on (by verified email) and used by subject afterwards.
CREATE TABLE oidc_identities (
    issuer     text NOT NULL,
    subject    text NOT NULL,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (issuer, subject),
    UNIQUE (issuer, user_id)
);

-- Sign-ons in progress: the state parameter (hashed), the nonce and the PKCE
-- verifier, so that any instance can finish what another began. Used once;
-- older than 10 minutes is refused and swept.
CREATE TABLE oidc_logins (
    state_hash bytea PRIMARY KEY,
    nonce      text NOT NULL,
    verifier   text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Rate limit counters, one row per key and fixed window; the limiter weighs
-- the previous window to approximate a sliding one. Shared by all instances.
CREATE TABLE rate_limits (
    bucket       text NOT NULL,
    window_start timestamptz NOT NULL,
    hits         integer NOT NULL,
    PRIMARY KEY (bucket, window_start)
);
CREATE INDEX rate_limits_window_idx ON rate_limits (window_start);
