//! `openstack-sim`: a Keystone v3 + Cinder v3 simulator for the tests,
//! benchmarks and demo of backup-gateway.
//!
//! It serves the subset of both APIs the gateway uses, with the status
//! codes, error bodies, headers and microversion behaviour recorded from the
//! real services (`sim/tests/recordings/`). Where it differs from them, it is
//! wrong. Start one with [`Sim::new`] and [`Sim::start`]; steer it (time,
//! failures, faults, chaos, data) through [`Sim`] and count the calls it
//! served with [`Sim::calls`].

mod cinder;
mod config;
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
pub use ops::Op;
pub use seed::{AppCredentialSeed, Quotas, Seed, SnapshotSeed, TenantSeed, UserSeed, VolumeSeed};
pub use sim::{RunningSim, Sim};
