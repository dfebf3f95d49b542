//! Integration tests of backup-gateway: the gateway on real TCP, the
//! OpenStack simulator over HTTP, a real SQLite file or PostgreSQL schema
//! per test. One binary, one link step.

mod backups;
mod cancel;
mod chaos;
mod cli;
mod compose;
mod databases;
mod demo;
mod errors;
mod estimates;
mod events;
mod faults;
mod helpers;
mod idempotency;
mod identity;
mod idp;
mod jobs;
mod limits;
mod log_secrets;
mod metrics;
mod migrations;
mod openapi;
mod process;
mod readiness;
mod replicas;
mod restart;
mod retention;
mod scenarios;
mod shutdown;
mod store_conformance;
mod takeover;
mod throughput;
mod upstream;
mod webhooks;
