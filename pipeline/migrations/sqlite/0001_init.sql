-- tusk's store: runs, the models they used, objects with their hashes, per-model results,
-- and failures. A result is unique per (object, fingerprint, model): reruns never duplicate.

CREATE TABLE runs (
    id            INTEGER PRIMARY KEY,
    started_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    finished_at   TEXT,
    tusk_version  TEXT NOT NULL,
    source        TEXT NOT NULL,
    status        TEXT NOT NULL,          -- running | done | interrupted | failed
    processed     INTEGER NOT NULL DEFAULT 0,
    skipped       INTEGER NOT NULL DEFAULT 0,
    failed        INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE models (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    version     TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    task        TEXT NOT NULL,
    thresholds  TEXT NOT NULL,            -- JSON object: label -> threshold
    UNIQUE (name, version, sha256)
);

CREATE TABLE run_models (
    run_id    INTEGER NOT NULL REFERENCES runs(id),
    model_id  INTEGER NOT NULL REFERENCES models(id),
    PRIMARY KEY (run_id, model_id)
);

CREATE TABLE objects (
    id           INTEGER PRIMARY KEY,
    uri          TEXT NOT NULL UNIQUE,
    fingerprint  TEXT NOT NULL,           -- size-mtime for files, ETag on S3
    kind         TEXT NOT NULL,
    listing_id   TEXT,
    seller_id    TEXT,
    platform     TEXT,
    meta         TEXT,                    -- free JSON from the manifest
    width        INTEGER NOT NULL,
    height       INTEGER NOT NULL,
    phash        TEXT NOT NULL,           -- 16 hex digits
    dhash        TEXT NOT NULL,
    run_id       INTEGER NOT NULL REFERENCES runs(id),
    updated_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX objects_seller ON objects (seller_id);
CREATE INDEX objects_phash ON objects (phash);
CREATE INDEX objects_dhash ON objects (dhash);

-- One row per object version and model: "this model has seen these bytes".
CREATE TABLE results (
    object_id    INTEGER NOT NULL REFERENCES objects(id) ON DELETE CASCADE,
    fingerprint  TEXT NOT NULL,
    model_id     INTEGER NOT NULL REFERENCES models(id),
    run_id       INTEGER NOT NULL REFERENCES runs(id),
    PRIMARY KEY (object_id, fingerprint, model_id)
);

CREATE TABLE scores (
    object_id    INTEGER NOT NULL REFERENCES objects(id) ON DELETE CASCADE,
    fingerprint  TEXT NOT NULL,
    model_id     INTEGER NOT NULL REFERENCES models(id),
    label        TEXT NOT NULL,
    score        REAL NOT NULL,
    PRIMARY KEY (object_id, fingerprint, model_id, label)
);

CREATE TABLE detections (
    id           INTEGER PRIMARY KEY,
    object_id    INTEGER NOT NULL REFERENCES objects(id) ON DELETE CASCADE,
    fingerprint  TEXT NOT NULL,
    model_id     INTEGER NOT NULL REFERENCES models(id),
    label        TEXT NOT NULL,
    score        REAL NOT NULL,
    x0 REAL, y0 REAL, x1 REAL, y1 REAL      -- NULL for classifiers
);
CREATE INDEX detections_object ON detections (object_id, fingerprint, model_id);
CREATE INDEX detections_label ON detections (label);

-- The latest failure per uri; cleared when the object later succeeds.
CREATE TABLE failures (
    id           INTEGER PRIMARY KEY,
    uri          TEXT NOT NULL UNIQUE,
    fingerprint  TEXT,
    stage        TEXT NOT NULL,           -- source | read | decode | infer
    reason       TEXT NOT NULL,           -- stable code: truncated, too_large, not_found, ...
    message      TEXT NOT NULL,
    retryable    INTEGER NOT NULL,        -- 0: a rerun skips it while the fingerprint is the same
    attempts     INTEGER NOT NULL DEFAULT 1,
    run_id       INTEGER NOT NULL REFERENCES runs(id),
    updated_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
