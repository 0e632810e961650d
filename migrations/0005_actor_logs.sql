-- What every actor printed: one row per actor run that got a container, holding its stdout
-- and stderr lines in order, each tagged with its stream, as JSON (bounded by
-- `executor.log_max_bytes`, the tail kept). Kept in the database so that any service
-- sharing it can serve the logs; removed with the instance.
CREATE TABLE actor_logs (
    instance_id  TEXT NOT NULL,
    seq          BIGINT NOT NULL,
    actor        TEXT NOT NULL,
    tag          TEXT,
    node         TEXT NOT NULL,
    container    TEXT NOT NULL,
    state        TEXT NOT NULL,
    started_at   BIGINT NOT NULL,
    ended_at     BIGINT NOT NULL,
    log          TEXT NOT NULL,
    PRIMARY KEY (instance_id, seq)
);
