-- Device sessions: a device's user session, started at enrolment for the
-- tenant's `device_session_hours` and renewed by `ward agent login`. NULL or
-- past means signed out: gateways refuse the device's connections.

ALTER TABLE devices ADD COLUMN session_expires_at INTEGER;
-- Devices enrolled before sessions existed keep working for a week.
UPDATE devices SET session_expires_at = CAST(strftime('%s', 'now') AS INTEGER) * 1000 + 604800000
    WHERE state = 'active';

ALTER TABLE tenants ADD COLUMN device_session_hours INTEGER NOT NULL DEFAULT 168;

-- A request made by an enrolled device to renew its session (`ward agent
-- login`): approving it renews the session instead of making a code.
ALTER TABLE enroll_requests ADD COLUMN device_id TEXT REFERENCES devices(id) ON DELETE CASCADE;
