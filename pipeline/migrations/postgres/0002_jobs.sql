-- The fleet's work queue (tusk enqueue / tusk worker): one job per object version. Workers
-- claim ready jobs (and jobs whose lease ran out) with FOR UPDATE SKIP LOCKED; each claim gets
-- a new lease token, and a worker's results count only if its token still holds the jobs when
-- it commits (fencing), in the same transaction that marks them done.

CREATE SEQUENCE lease_tokens;

CREATE TABLE jobs (
    id           BIGSERIAL PRIMARY KEY,
    uri          TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    location     TEXT NOT NULL,           -- a path or s3://bucket/key
    meta         TEXT NOT NULL,           -- the source's ObjectMeta as JSON (kind, seller, ...)
    state        TEXT NOT NULL DEFAULT 'ready',   -- ready | leased | done | failed
    attempts     INTEGER NOT NULL DEFAULT 0,
    not_before   TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),  -- retry backoff
    lease_owner  TEXT,
    lease_token  BIGINT,
    lease_until  TIMESTAMPTZ,
    last_error   TEXT,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (uri, fingerprint)
);
-- What claims scan: open jobs only, oldest first.
CREATE INDEX jobs_open ON jobs (id) WHERE state IN ('ready', 'leased');
CREATE INDEX jobs_token ON jobs (lease_token) WHERE state = 'leased';
