-- End users' passwords, for the user portal: an argon2id hash (NULL: the
-- user has none and cannot sign in to the portal), and what the sign-in
-- lock-out needs per user, as accounts have it.

ALTER TABLE users ADD COLUMN password_hash TEXT;
ALTER TABLE users ADD COLUMN failed_logins INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN locked_until INTEGER;
ALTER TABLE users ADD COLUMN last_login_at INTEGER;
