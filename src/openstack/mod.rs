//! Everything that talks to OpenStack: clouds.yaml, Keystone tokens (cached
//! per tenant, single flight), the service catalog, and the Cinder client
//! with its error mapping into typed errors. Knows nothing of jobs or HTTP
//! handlers.

pub mod catalog;
pub mod cinder;
pub mod clouds;
pub mod error;
pub mod health;
mod http;
pub mod keystone;
pub mod microversion;
mod session;

use std::time::Duration;

pub use cinder::{
    Accepted, Backup, BackupFilter, CallContext, Cinder, NewBackup, OpenStackClient, Page, Snapshot,
};
pub use error::{Error, NoAnswer};
pub use health::{UpstreamFailure, UpstreamHealth};

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
    /// How long a failed token request is remembered before Keystone is
    /// asked again.
    pub auth_backoff: Backoff,
}

/// Exponential backoff without jitter: `base * 2^(n-1)`, at most `max`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// The first delay.
    pub base: Duration,
    /// The longest delay.
    pub max: Duration,
}

impl Backoff {
    /// The delay after the `n`-th failure in a row (from 1).
    pub fn delay(&self, n: u32) -> Duration {
        self.base
            .saturating_mul(1u32 << n.saturating_sub(1).min(20))
            .min(self.max)
    }
}
