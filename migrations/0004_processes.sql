-- Several service processes on one database.
--
-- `processes`: each running service process, by its own identity, with a heartbeat; a process
-- whose heartbeat is older than the lease is dead, and a live one takes its work over.
-- `node_slots`: a running container's slot on a node, numbered below the node's capacity; the
-- primary key makes a slot taken by one process only, so no node runs more containers than
-- its capacity however many processes share it. `actor_waits`: actors waiting for a slot in
-- every process, so that priorities and arrival order hold across processes.
-- On instances: `replaying` is 1 while a process evaluates the script (an interruption then
-- may be the script's fault and counts in `suspect_runs`); `fence` is bumped by every write of
-- a run, which locks the row against a concurrent re-run or cancel.
CREATE TABLE processes (
    id            TEXT PRIMARY KEY,
    deployment    TEXT NOT NULL,
    host          TEXT NOT NULL,
    started_at    BIGINT NOT NULL,
    heartbeat_at  BIGINT NOT NULL
);

CREATE TABLE node_slots (
    node         TEXT NOT NULL,
    slot         BIGINT NOT NULL,
    process      TEXT NOT NULL,
    holder       TEXT NOT NULL,
    acquired_at  BIGINT NOT NULL,
    PRIMARY KEY (node, slot)
);
CREATE INDEX node_slots_process ON node_slots (process);

CREATE TABLE actor_waits (
    id        TEXT PRIMARY KEY,
    process   TEXT NOT NULL,
    priority  BIGINT NOT NULL,
    seq       BIGINT NOT NULL
);
CREATE INDEX actor_waits_order ON actor_waits (priority, seq);

-- An actor of a pending call that has ended keeps its record here at once, so that a run
-- taken over after a crash does not run it again (the call's result comes when all have ended).
ALTER TABLE actor_starts ADD COLUMN record TEXT;

ALTER TABLE instances ADD COLUMN replaying BIGINT NOT NULL DEFAULT 0;
ALTER TABLE instances ADD COLUMN suspect_runs BIGINT NOT NULL DEFAULT 0;
ALTER TABLE instances ADD COLUMN fence BIGINT NOT NULL DEFAULT 0;
CREATE INDEX instances_run_by ON instances (run_by);
