-- Whether a detection reaches its label's threshold. A scan stores only those (1); `tusk eval`
-- also stores weaker detector boxes (0) to rank them for average precision. A scan is flagged
-- when it has a detection with flagged = 1.
ALTER TABLE detections ADD COLUMN flagged INTEGER NOT NULL DEFAULT 1;
