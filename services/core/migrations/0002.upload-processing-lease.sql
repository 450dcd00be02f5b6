-- Completing an upload is claimed under a short lease, so the slow part (assembling, copying,
-- hashing and parsing the bytes) runs with no transaction open. Plain PostgreSQL 15+.
-- depends: 0001.users-uploads-tracks

ALTER TABLE uploads ADD COLUMN lease_until timestamptz;

-- The inline CHECK of 0001 got PostgreSQL's generated name; replace it to allow 'processing'.
ALTER TABLE uploads DROP CONSTRAINT uploads_status_check;
ALTER TABLE uploads ADD CONSTRAINT uploads_status_check
    CHECK (status IN ('pending', 'processing', 'completed', 'rejected'));
-- A claim without a lease could never be taken over or swept: it would be stuck for good.
ALTER TABLE uploads ADD CONSTRAINT uploads_processing_lease_check
    CHECK (status <> 'processing' OR lease_until IS NOT NULL);

-- The sweeper also expires claims whose completion crashed, so its index covers them too.
DROP INDEX uploads_pending_expiry_idx;
CREATE INDEX uploads_open_expiry_idx ON uploads (expires_at)
    WHERE status IN ('pending', 'processing');
