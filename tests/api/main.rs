//! HTTP tests of the service: a real server on a loopback port, for every route, on SQLite
//! and on PostgreSQL. Start PostgreSQL with `scripts/test.sh` (or set WHARF_TEST_POSTGRES_URL).

mod support;

mod access;
mod actors;
mod binary;
mod blobs;
mod callbacks;
mod cli;
mod docs;
mod instances;
mod joyoi_sdk;
mod metrics;
mod mtls;
mod newtonsoft;
mod nodes;
mod replicas;
mod state_machines;
