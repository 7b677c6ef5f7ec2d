-- Re-post verification (hash_version 3): hashes of the parts of each listing photo that
-- re-posts keep (the photo cut out of a screenshot or frame, centre crops) as a JSON array of
-- {"view", "rect", "phash", "dhash", "pdq", "pdq_quality"}, and the photo's ORB features
-- (reuse::features::ObjectFeatures::to_bytes: about 36 bytes a keypoint, twice with the mirror
-- image) for the bytes named by `fingerprint`.
ALTER TABLE objects ADD COLUMN views TEXT;

CREATE TABLE features (
    object_id    INTEGER PRIMARY KEY REFERENCES objects(id) ON DELETE CASCADE,
    fingerprint  TEXT NOT NULL,
    keypoints    INTEGER NOT NULL,        -- of the photo itself (not the mirror image)
    data         BLOB NOT NULL
);
