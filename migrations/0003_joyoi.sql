-- JoyOI's instance and blob semantics.
--
-- `run_by` names the service running an instance (it was kept in `execution_key`, which is
-- now JoyOI's: the id of the instance's current execution, new on every PUT and PATCH, and
-- the `run_id` its run writes under). An instance starts in stage `Start`. A blob's
-- `time_stamp` is in Unix seconds, as JoyOI stores it (it was in milliseconds). Identical
-- content uploaded again returns the first blob with it, found by `blobs_sha256`.
-- `actor_starts` says which actors of a pending call have a container (the others wait for
-- a node), so any service sharing the database can tell.
ALTER TABLE instances ADD COLUMN run_by TEXT;
UPDATE instances SET run_by = execution_key WHERE status = 'Running';
UPDATE instances SET execution_key = run_id;
UPDATE instances SET stage = 'Start' WHERE stage IS NULL;
UPDATE blobs SET time_stamp = time_stamp / 1000 WHERE time_stamp > 100000000000;
CREATE INDEX blobs_sha256 ON blobs (sha256);

CREATE TABLE actor_starts (
    instance_id  TEXT NOT NULL,
    position     BIGINT NOT NULL,
    idx          BIGINT NOT NULL,
    node         TEXT NOT NULL,
    container    TEXT NOT NULL,
    started_at   BIGINT NOT NULL,
    PRIMARY KEY (instance_id, position, idx)
);
