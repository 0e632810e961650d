-- What running instances record. `instance_events` is the durable history of a state
-- machine's script: one row per effectful host call, in call order, with its result once
-- it has one (NULL while pending). `callbacks` are deliveries to Parameters.Host, stored
-- before they are sent and retried until delivered or given up.

CREATE TABLE instance_events (
    instance_id  TEXT NOT NULL,
    position     BIGINT NOT NULL,
    kind         TEXT NOT NULL,
    args         TEXT NOT NULL,
    result       TEXT,
    stage        TEXT,
    created_at   BIGINT NOT NULL,
    finished_at  BIGINT,
    PRIMARY KEY (instance_id, position)
);

CREATE TABLE callbacks (
    id               TEXT PRIMARY KEY,
    instance_id      TEXT NOT NULL,
    url              TEXT NOT NULL,
    payload          TEXT NOT NULL,
    status           TEXT NOT NULL,
    attempts         BIGINT NOT NULL,
    next_attempt_at  BIGINT NOT NULL,
    last_error       TEXT,
    created_at       BIGINT NOT NULL,
    delivered_at     BIGINT
);
CREATE INDEX callbacks_due ON callbacks (status, next_attempt_at);
CREATE INDEX callbacks_instance ON callbacks (instance_id);

-- The script an instance runs is fixed when it starts: editing the state machine later does
-- not change what a replay sees. `run_id` names the current run of the instance, so that a
-- run superseded by a PATCH or a cancel cannot write over its successor.
ALTER TABLE instances ADD COLUMN script TEXT;
ALTER TABLE instances ADD COLUMN run_id TEXT;
