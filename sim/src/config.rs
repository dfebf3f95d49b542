//! Run-time knobs of the simulator: how long backups take, how long tokens
//! live, the page size cap and the availability zones that have a backup
//! service. Nothing here knows about HTTP.

use std::time::Duration;

use crate::Microversion;

/// Settings of one simulator instance.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// How long a backup stays `creating` (and a deleted one `deleting`).
    /// The recordings took about 10 s; tests want much less.
    pub backup_duration: Duration,
    /// Lifetime of issued tokens (Keystone's `[token] expiration`, 3600 s).
    pub token_ttl: Duration,
    /// Cinder's `osapi_max_limit`: the largest page a list answers.
    pub max_page_limit: usize,
    /// Zones with a `cinder-backup` service. A backup asked for another zone
    /// is accepted and then fails, as recorded (exchanges 23-25).
    pub availability_zones: Vec<String>,
    /// The newest Cinder microversion served (3.71 today); an older value
    /// stands in for an older cloud.
    pub max_microversion: Microversion,
    /// The host name clients reach the simulator by, in the catalog and the
    /// clouds.yaml (with the listeners' ports); the listeners' addresses
    /// when `None`. For a simulator in a container listening on `0.0.0.0`.
    pub public_host: Option<String>,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            backup_duration: Duration::from_secs(2),
            token_ttl: Duration::from_secs(3600),
            max_page_limit: 1000,
            availability_zones: vec!["nova".to_owned()],
            max_microversion: Microversion::MAX,
            public_host: None,
        }
    }
}
