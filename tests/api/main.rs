//! Integration tests of backup-gateway: the gateway on real TCP, the
//! OpenStack simulator over HTTP, a real SQLite file per test. One binary,
//! one link step.

mod backups;
mod chaos;
mod errors;
mod helpers;
mod jobs;
mod openapi;
mod restart;
mod scenarios;
mod upstream;
