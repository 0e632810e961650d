-- The first schema. Written in the subset SQLite and PostgreSQL share: TEXT, BIGINT, BYTEA;
-- ids are UUID text, times are milliseconds since the epoch, booleans are 0/1. `seq` orders
-- listings newest first: a microsecond timestamp that never repeats within one process.

CREATE TABLE actors (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    body        TEXT NOT NULL,
    image       TEXT,
    outputs     TEXT NOT NULL,
    limitation  TEXT,
    seq         BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX actors_seq ON actors (seq);

CREATE TABLE state_machines (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    body        TEXT NOT NULL,
    limitation  TEXT,
    seq         BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX state_machines_seq ON state_machines (seq);

-- Content is stored once per SHA-256, split into chunks. Chunks are written first, each on
-- its own, and the content row last: a content row means all its chunks are there.
CREATE TABLE blob_contents (
    sha256      TEXT PRIMARY KEY,
    size        BIGINT NOT NULL,
    chunk_count BIGINT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE blob_chunks (
    sha256      TEXT NOT NULL,
    idx         BIGINT NOT NULL,
    data        BYTEA NOT NULL,
    PRIMARY KEY (sha256, idx)
);

CREATE TABLE blobs (
    id          TEXT PRIMARY KEY,
    sha256      TEXT NOT NULL REFERENCES blob_contents (sha256),
    name        TEXT NOT NULL,
    remark      TEXT NOT NULL,
    time_stamp  BIGINT NOT NULL,
    seq         BIGINT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX blobs_seq ON blobs (seq);

CREATE TABLE instances (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    status          TEXT NOT NULL,
    stage           TEXT,
    initial_blobs   TEXT NOT NULL,
    limitation      TEXT,
    parameters      TEXT NOT NULL,
    priority        BIGINT NOT NULL,
    from_service    TEXT,
    re_run_times    BIGINT NOT NULL,
    exception       TEXT,
    execution_key   TEXT,
    result          TEXT,
    seq             BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    start_time      BIGINT,
    end_time        BIGINT
);
CREATE INDEX instances_seq ON instances (seq);
CREATE INDEX instances_created ON instances (created_at);
CREATE INDEX instances_status ON instances (status);

CREATE TABLE nodes (
    name        TEXT PRIMARY KEY,
    address     TEXT NOT NULL,
    image       TEXT NOT NULL,
    capacity    BIGINT NOT NULL,
    drained     BIGINT NOT NULL,
    tls         TEXT,
    source      TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
