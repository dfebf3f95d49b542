//! `openstack-sim`: a Keystone v3 + Cinder v3 simulator for the tests,
//! benchmarks and demo of backup-gateway.
//!
//! It serves the subset of both APIs the gateway uses, with the status
//! codes, error bodies, headers and microversion behaviour recorded from the
//! real services (`sim/tests/recordings/`). Where it differs from them, it is
//! wrong. Start one with [`Sim::new`] and [`Sim::start`]; steer it (time,
//! failures, faults, chaos, data) through [`Sim`] and count the calls it
//! served with [`Sim::calls`] (by operation) and [`Sim::calls_by_status`]
//! (by service, operation and status of the answer).
//!
//! # Control endpoint
//!
//! A started simulator, in-process ([`Sim::start`]) or the `openstack-sim`
//! binary, also serves a few control routes under `/_sim/` on its Keystone
//! listener (the host and port of the `auth_url` its clouds.yaml names), so
//! that a test or benchmark driving the binary can do over HTTP what an
//! in-process test does through [`Sim`]. These calls are never counted and
//! never suffer faults or chaos. **They are unauthenticated**: a test tool,
//! meant for loopback. Errors are `{"error": "..."}`.
//!
//! - `GET /_sim/calls`: 200 `{"calls": [{"service": "cinder", "operation":
//!   "BackupDetail", "status": 200, "count": 12}, ...], "total": N}`, sorted
//!   by service, operation and status, as [`Sim::calls_by_status`]. A call
//!   whose connection was cut without an answer has status 0
//!   ([`CallCount::NO_ANSWER`]).
//! - `DELETE /_sim/calls`: 204; every counter back to zero
//!   ([`Sim::reset_calls`]).
//! - `GET /_sim/settings`: 200 `{"backup_duration_ms": u64, "token_ttl_ms":
//!   u64, "fail_reason": string|null, "chaos": null|{"error_rate": f64,
//!   "error_status": u16, "latency_ms": u64, "latency_rate": f64,
//!   "drop_before_rate": f64, "drop_after_rate": f64, "keystone": bool,
//!   "seed": u64|null}}`.
//! - `PATCH /_sim/settings` with any subset of those fields: each one given
//!   is set (`"chaos": null` turns chaos off; a `chaos` object is merged
//!   over the chaos in force, or over [`Chaos::default`], and restarts its
//!   draws); 200 with the new settings. An unknown field, a wrong type, a
//!   rate outside 0..1 or an `error_status` outside 400..599 is a 400 and
//!   changes nothing.
//! - `POST /_sim/finish-pending`: 204; every `creating` or `deleting` backup
//!   ends now ([`Sim::finish_pending`]).
//! - `GET /_sim/backups/count`: 200 `{"creating": n, "available": n,
//!   "error": n, "deleting": n, "restoring": n, "total": n}` over all
//!   projects ([`Sim::backup_counts`]).

mod cinder;
mod config;
mod control;
mod errors;
mod faults;
mod ids;
mod keystone;
mod microversion;
mod ops;
mod pyrepr;
mod query;
pub mod seed;
mod server;
mod sim;
mod state;
mod timefmt;

pub use config::SimConfig;
pub use faults::{Chaos, ChaosStats, Fault, FaultKind};
pub use microversion::Microversion;
pub use ops::{CallCount, Op};
pub use seed::{AppCredentialSeed, Quotas, Seed, SnapshotSeed, TenantSeed, UserSeed, VolumeSeed};
pub use sim::{RunningSim, Sim};
pub use state::BackupCounts;
