//! Jobs: the business rules of the gateway. Submitting a backup (store
//! first, then Cinder, then the store again), reading jobs and snapshots
//! for a tenant, and the worker that follows running backups to their end.
//!
//! This module holds no HTTP types: handlers in `api` call it and map its
//! [`Error`] to problem+json. It talks to OpenStack only through the
//! [`Cinder`](crate::openstack::Cinder) trait and to storage only through
//! [`JobStore`](crate::store::JobStore).

mod error;
pub mod model;
pub(crate) mod service;
mod snapshots;
mod worker;

pub use error::{Error, upstream_problem};
pub use service::{JOB_ID_METADATA_KEY, JobPage, Jobs, JobsSettings, Tenants};
pub use snapshots::SnapshotBackups;
pub use worker::Worker;
