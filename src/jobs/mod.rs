//! Jobs: the business rules of the gateway. Submitting a backup (store
//! first, then Cinder, then the store again), reading and cancelling jobs
//! and snapshots for a tenant, idempotency keys, retention, and the worker
//! that follows running backups to their end.
//!
//! This module holds no HTTP types: handlers in `api` call it and map its
//! [`Error`] to problem+json. It talks to OpenStack only through the
//! [`Cinder`](crate::openstack::Cinder) trait and to storage only through
//! [`JobStore`](crate::store::JobStore).

mod callbacks;
mod error;
pub mod estimates;
pub mod events;
pub mod idempotency;
mod leases;
pub mod model;
mod retention;
mod retry;
pub(crate) mod service;
mod snapshots;
mod submission;
pub(crate) mod validation;
mod waiters;
mod worker;

pub use error::{Error, upstream_problem};
pub use leases::{LeaseSettings, Leases};
pub use retention::Purged;
pub use retry::backoff;
pub use service::{JobPage, Jobs, JobsSettings, Tenants};
pub use snapshots::SnapshotBackups;
pub use submission::JOB_ID_METADATA_KEY;
pub use worker::{Worker, WorkerLimits};
