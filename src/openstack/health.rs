//! What each cloud entry's Keystone and Cinder last answered, for
//! readiness: an operator sees which tenant's cloud fails, and since when,
//! without the gateway calling itself unready (an upstream outage is not a
//! reason to take every replica away from the load balancer).

use std::sync::Mutex;

use chrono::{DateTime, Utc};

use super::error::{Error, Service};

/// One cloud entry's last answers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UpstreamHealth {
    /// When Keystone last gave a token.
    pub last_keystone_success: Option<DateTime<Utc>>,
    /// When Cinder last answered (any answer but a 5xx: a 404 is Cinder
    /// working).
    pub last_cinder_success: Option<DateTime<Utc>>,
    /// The last failure: Keystone or Cinder unreachable, a 5xx, or
    /// credentials refused.
    pub last_error: Option<UpstreamFailure>,
}

/// A failed upstream call.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamFailure {
    /// When.
    pub at: DateTime<Utc>,
    /// `keystone` or `cinder`.
    pub service: &'static str,
    /// What went wrong, without internal addresses (as problems say it).
    pub detail: String,
}

/// A session's record of its last answers.
#[derive(Debug, Default)]
pub(super) struct HealthRecord(Mutex<UpstreamHealth>);

impl HealthRecord {
    fn update(&self, change: impl FnOnce(&mut UpstreamHealth)) {
        let mut health = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        change(&mut health);
    }

    /// `service` answered.
    pub(super) fn success(&self, service: Service) {
        let now = Utc::now();
        self.update(|health| match service {
            Service::Keystone => health.last_keystone_success = Some(now),
            Service::Cinder => health.last_cinder_success = Some(now),
        });
    }

    /// A call to `service` failed with `error`.
    pub(super) fn failure(&self, service: Service, error: &Error) {
        let failure = UpstreamFailure {
            at: Utc::now(),
            service: match service {
                Service::Keystone => "keystone",
                Service::Cinder => "cinder",
            },
            detail: error.to_string(),
        };
        self.update(|health| health.last_error = Some(failure));
    }

    /// The record as it stands.
    pub(super) fn snapshot(&self) -> UpstreamHealth {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}
