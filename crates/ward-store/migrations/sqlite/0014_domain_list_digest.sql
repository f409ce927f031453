-- Gateways fetch domain lists by the SHA-256 of their text (snapshots name
-- lists by digest instead of carrying them).
CREATE INDEX domain_lists_sha256 ON domain_lists (sha256);
