//! The scenarios against the simulator: always run, fast. The simulator's
//! backups take a few hundred milliseconds and the gateway's worker polls
//! on its own, so the scenarios see the same life cycle as on a real cloud.

use std::time::Duration;

use openstack_sim::Quotas;

use super::{CloudGuard, Upstream};
use crate::helpers::{PROJECT_A, PROJECT_B, PROJECT_R, TestApp};

/// How long a simulated backup takes in the scenarios.
const BACKUP_DURATION: Duration = Duration::from_millis(300);

/// The simulator with a gateway in front of it.
pub struct SimCloud {
    /// The gateway and its simulator; its tenants include the special ones.
    pub app: TestApp,
}

fn project_of(tenant: &str) -> &'static str {
    match tenant {
        "tenant-a" => PROJECT_A,
        "tenant-b" => PROJECT_B,
        "tenant-r" => PROJECT_R,
        other => panic!("no simulated tenant {other}"),
    }
}

impl SimCloud {
    /// Starts a simulator and a gateway with its worker running.
    pub async fn start() -> Upstream {
        Upstream::Sim(SimCloud {
            app: TestApp::spawn_live(BACKUP_DURATION, &["--webhook-allow", "127.0.0.0/8"]).await,
        })
    }

    pub(super) fn fresh_snapshot(&self, tenant: &str) -> String {
        let project = project_of(tenant);
        let volume_id = uuid::Uuid::new_v4().to_string();
        let snapshot_id = uuid::Uuid::new_v4().to_string();
        self.app.add_snapshot(project, &volume_id, &snapshot_id);
        snapshot_id
    }

    pub(super) fn cap_backups_at_usage(&self, tenant: &str) -> CloudGuard {
        let project = project_of(tenant);
        let usage = i64::try_from(self.app.sim.backups(project).len()).expect("few backups");
        self.app.sim.set_quotas(
            project,
            Quotas {
                backups: usage,
                backup_gigabytes: -1,
            },
        );
        let sim = self.app.sim.clone();
        CloudGuard::new(move || sim.set_quotas(project, Quotas::UNLIMITED))
    }

    pub(super) fn reset_snapshot_later(&self, snapshot_id: &str) -> CloudGuard {
        let sim = self.app.sim.clone();
        let snapshot_id = snapshot_id.to_owned();
        CloudGuard::new(move || sim.set_snapshot_status(&snapshot_id, "available"))
    }

    /// Backups of 5 s, as long as a real cloud's.
    pub(super) fn slow_backups(&self) -> CloudGuard {
        self.app.sim.set_backup_duration(Duration::from_secs(5));
        let sim = self.app.sim.clone();
        CloudGuard::new(move || sim.set_backup_duration(BACKUP_DURATION))
    }

    /// Tokens of 2 s, and backups of 5 s so that a job outlives a token.
    pub(super) fn shorten_tokens(&self) -> (Duration, CloudGuard) {
        let lifetime = Duration::from_secs(2);
        self.app.sim.set_token_ttl(lifetime);
        self.app.sim.set_backup_duration(Duration::from_secs(5));
        let sim = self.app.sim.clone();
        let guard = CloudGuard::new(move || {
            sim.set_token_ttl(Duration::from_secs(3600));
            sim.set_backup_duration(BACKUP_DURATION);
        });
        (lifetime, guard)
    }
}

// Every scenario of `super`, on a cloud of its own.
super::every_scenario!(SimCloud::start());
