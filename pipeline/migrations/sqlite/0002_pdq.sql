-- PDQ hashes (64 hex digits) with their quality, and which hashing scheme made an object's
-- hashes: version 2 trims uniform borders first and adds PDQ. Objects hashed by an older
-- version are redone by the next run over them (Store::is_done).
ALTER TABLE objects ADD COLUMN pdq TEXT;
ALTER TABLE objects ADD COLUMN pdq_quality INTEGER;
ALTER TABLE objects ADD COLUMN hash_version INTEGER NOT NULL DEFAULT 1;
