-- Reviewers' decisions on flagged objects (the review page and POST /v1/objects/{id}/decisions).
-- Append-only: a decision is never changed or deleted; undo is a new row naming the decision it
-- takes back (at most one undo per decision). Each row keeps what the reviewer saw: the bytes
-- (fingerprint), and the model, version, label, score and threshold of the object's strongest
-- flagged detection at that time.
CREATE TABLE decisions (
    id             BIGSERIAL PRIMARY KEY,
    object_id      BIGINT NOT NULL REFERENCES objects(id),
    fingerprint    TEXT NOT NULL,
    action         TEXT NOT NULL,         -- confirm | reject | undo
    reason         TEXT,                  -- why rejected: bone | resin | ceramic | toy_or_replica | other_animal | other
    note           TEXT,
    boxes          TEXT,                  -- JSON array of {"label", "box": [x0, y0, x1, y1]} a reviewer drew
    undoes         BIGINT REFERENCES decisions(id),
    who            TEXT NOT NULL,         -- the token's name
    model          TEXT,
    model_version  TEXT,
    label          TEXT,
    score          DOUBLE PRECISION,
    threshold      DOUBLE PRECISION,
    at             TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX decisions_object ON decisions (object_id, id);
CREATE UNIQUE INDEX decisions_undoes ON decisions (undoes) WHERE undoes IS NOT NULL;
-- The review queue reads flagged detections of current bytes, newest objects first.
CREATE INDEX detections_flagged ON detections (object_id, flagged, score);
