//! The scenarios against the simulator: always run, fast. The simulator's
//! backups take a few hundred milliseconds and the gateway's worker polls
//! on its own, so the scenarios see the same life cycle as on a real cloud.

use std::time::Duration;

use openstack_sim::{Quotas, SnapshotSeed, VolumeSeed};

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
            app: TestApp::spawn_live(BACKUP_DURATION, &[]).await,
        })
    }

    pub(super) fn fresh_snapshot(&self, tenant: &str) -> String {
        let project = project_of(tenant);
        let volume_id = uuid::Uuid::new_v4().to_string();
        let snapshot_id = uuid::Uuid::new_v4().to_string();
        self.app.sim.add_volume(
            project,
            VolumeSeed {
                id: volume_id.clone(),
                name: "scenario".into(),
                size: 1,
                status: "available".into(),
            },
        );
        self.app.sim.add_snapshot(
            project,
            SnapshotSeed {
                id: snapshot_id.clone(),
                name: "scenario-snap".into(),
                description: None,
                volume_id,
                status: "available".into(),
                metadata: Default::default(),
            },
        );
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

/// One `#[tokio::test]` per scenario, on a simulator of its own.
macro_rules! on_the_simulator {
    ($($scenario:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $scenario() {
                let mut cloud = SimCloud::start().await;
                super::$scenario(&mut cloud).await;
            }
        )*
    };
}

on_the_simulator!(
    backup_runs_to_succeeded,
    concurrent_creates_make_one_job,
    missing_and_foreign_resources_are_404,
    quota_exceeded_is_409_and_leaves_no_job,
    incremental_without_full_backup_is_422,
    unknown_zone_fails_the_job_with_cinders_reason,
    reader_only_credential_is_403,
    wrong_secret_is_502_and_never_shown,
    jobs_finish_across_token_expiry,
);
