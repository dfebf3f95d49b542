//! Everything that talks to OpenStack: clouds.yaml, Keystone tokens (cached
//! per tenant, single flight), the service catalog, and the Cinder client
//! with its error mapping into typed errors. Knows nothing of jobs or HTTP
//! handlers.

pub mod catalog;
pub mod cinder;
pub mod clouds;
pub mod error;
mod http;
pub mod keystone;
pub mod microversion;
mod session;

use std::time::Duration;

pub use cinder::{
    Accepted, Backup, BackupFilter, CallContext, Cinder, NewBackup, OpenStackClient, Page, Snapshot,
};
pub use error::Error;

/// Settings shared by every cloud's session.
#[derive(Debug, Clone)]
pub struct UpstreamSettings {
    /// Catalog interface, unless the cloud entry names one.
    pub interface: String,
    /// Catalog region, unless the cloud entry names one.
    pub region: Option<String>,
    /// Time limit of one call.
    pub timeout: Duration,
    /// Page size of backup listings.
    pub page_size: u32,
}
