-- tusk's store on PostgreSQL: the same tables as SQLite's migrations 0001–0004 together, with
-- PostgreSQL's types. A result is unique per (object, fingerprint, model): reruns and
-- concurrent workers never duplicate one.

CREATE TABLE runs (
    id            BIGSERIAL PRIMARY KEY,
    started_at    TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    finished_at   TIMESTAMPTZ,
    tusk_version  TEXT NOT NULL,
    source        TEXT NOT NULL,
    status        TEXT NOT NULL,          -- running | done | interrupted | failed
    processed     BIGINT NOT NULL DEFAULT 0,
    skipped       BIGINT NOT NULL DEFAULT 0,
    failed        BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE models (
    id          BIGSERIAL PRIMARY KEY,
    name        TEXT NOT NULL,
    version     TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    task        TEXT NOT NULL,
    thresholds  TEXT NOT NULL,            -- JSON object: label -> threshold
    UNIQUE (name, version, sha256)
);

CREATE TABLE run_models (
    run_id    BIGINT NOT NULL REFERENCES runs(id),
    model_id  BIGINT NOT NULL REFERENCES models(id),
    PRIMARY KEY (run_id, model_id)
);

CREATE TABLE objects (
    id            BIGSERIAL PRIMARY KEY,
    uri           TEXT NOT NULL UNIQUE,
    fingerprint   TEXT NOT NULL,          -- size-mtime for files, ETag on S3
    kind          TEXT NOT NULL,
    listing_id    TEXT,
    seller_id     TEXT,
    platform      TEXT,
    meta          TEXT,                   -- free JSON from the manifest
    width         BIGINT NOT NULL,
    height        BIGINT NOT NULL,
    phash         TEXT NOT NULL,          -- 16 hex digits
    dhash         TEXT NOT NULL,
    pdq           TEXT,                   -- 64 hex digits
    pdq_quality   BIGINT,
    hash_version  BIGINT NOT NULL DEFAULT 1,
    views         TEXT,                   -- JSON array of view hashes (see SQLite's 0004)
    run_id        BIGINT NOT NULL REFERENCES runs(id),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX objects_seller ON objects (seller_id);
CREATE INDEX objects_phash ON objects (phash);
CREATE INDEX objects_dhash ON objects (dhash);
CREATE INDEX objects_updated ON objects (updated_at, id);

-- One row per object version and model: "this model has seen these bytes".
CREATE TABLE results (
    object_id    BIGINT NOT NULL REFERENCES objects(id) ON DELETE CASCADE,
    fingerprint  TEXT NOT NULL,
    model_id     BIGINT NOT NULL REFERENCES models(id),
    run_id       BIGINT NOT NULL REFERENCES runs(id),
    PRIMARY KEY (object_id, fingerprint, model_id)
);

CREATE TABLE scores (
    object_id    BIGINT NOT NULL REFERENCES objects(id) ON DELETE CASCADE,
    fingerprint  TEXT NOT NULL,
    model_id     BIGINT NOT NULL REFERENCES models(id),
    label        TEXT NOT NULL,
    score        DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (object_id, fingerprint, model_id, label)
);

CREATE TABLE detections (
    id           BIGSERIAL PRIMARY KEY,
    object_id    BIGINT NOT NULL REFERENCES objects(id) ON DELETE CASCADE,
    fingerprint  TEXT NOT NULL,
    model_id     BIGINT NOT NULL REFERENCES models(id),
    label        TEXT NOT NULL,
    score        DOUBLE PRECISION NOT NULL,
    x0 DOUBLE PRECISION, y0 DOUBLE PRECISION, x1 DOUBLE PRECISION, y1 DOUBLE PRECISION,  -- NULL for classifiers
    flagged      BOOLEAN NOT NULL DEFAULT TRUE
);
CREATE INDEX detections_object ON detections (object_id, fingerprint, model_id);
CREATE INDEX detections_label ON detections (label);

-- The latest failure per uri; cleared when the object later succeeds.
CREATE TABLE failures (
    id           BIGSERIAL PRIMARY KEY,
    uri          TEXT NOT NULL UNIQUE,
    fingerprint  TEXT,
    stage        TEXT NOT NULL,           -- source | read | decode | infer
    reason       TEXT NOT NULL,           -- stable code: truncated, too_large, not_found, ...
    message      TEXT NOT NULL,
    retryable    BOOLEAN NOT NULL,        -- false: a rerun skips it while the fingerprint is the same
    attempts     BIGINT NOT NULL DEFAULT 1,
    run_id       BIGINT NOT NULL REFERENCES runs(id),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);

CREATE TABLE features (
    object_id    BIGINT PRIMARY KEY REFERENCES objects(id) ON DELETE CASCADE,
    fingerprint  TEXT NOT NULL,
    keypoints    BIGINT NOT NULL,         -- of the photo itself (not the mirror image)
    data         BYTEA NOT NULL
);
