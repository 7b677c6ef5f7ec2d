-- API tokens of `tusk serve` (tusk token create|list|revoke): only the SHA-256 of each token is
-- kept; the token itself is shown once, when made.
CREATE TABLE tokens (
    id          BIGSERIAL PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    role        TEXT NOT NULL,            -- station | crawler | analyst | admin
    sha256      TEXT NOT NULL UNIQUE,     -- hex of the token's SHA-256
    created_at  TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    revoked_at  TIMESTAMPTZ
);
