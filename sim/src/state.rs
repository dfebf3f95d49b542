//! The simulated clouds' data: projects, credentials, tokens, volumes,
//! snapshots, backups and quotas, and the rules that move backups through
//! their life cycle. Time passes lazily: every access first applies the
//! transitions that are due (`advance`), so no background task is needed
//! and a test can make time "pass" by shortening the backup duration.
//! Volumes, snapshots and backups live in indexed stores (`tables`): that
//! step, a lookup and a listing cost what they find, not the size of the
//! cloud.
//! Knows nothing of HTTP or JSON views.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::seed::{AppCredentialSeed, Quotas, Seed, SnapshotSeed, UserSeed, VolumeSeed};
use crate::{SimConfig, ids};

mod tables;

pub use tables::BackupCounts;
pub(crate) use tables::{Backups, Table};

/// Why a bad-AZ backup fails (exchange 24: no `cinder-backup` in that zone).
pub(crate) const NO_SERVICE_REASON: &str = "Service not found for creating backup.";

/// A Keystone project with its credentials and Cinder quotas.
#[derive(Debug, Clone)]
pub(crate) struct Tenant {
    pub(crate) name: String,
    pub(crate) project_id: String,
    pub(crate) app_credentials: Vec<AppCredentialSeed>,
    pub(crate) users: Vec<UserSeed>,
    pub(crate) quotas: Quotas,
}

/// A volume.
#[derive(Debug, Clone)]
pub(crate) struct Volume {
    pub(crate) id: String,
    pub(crate) project_id: String,
    pub(crate) name: String,
    pub(crate) size: u64,
    pub(crate) status: String,
    pub(crate) user_id: String,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) updated_at: DateTime<Utc>,
}

/// A snapshot.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    pub(crate) id: String,
    pub(crate) project_id: String,
    pub(crate) name: String,
    pub(crate) description: Option<String>,
    pub(crate) volume_id: String,
    pub(crate) status: String,
    pub(crate) metadata: BTreeMap<String, String>,
    pub(crate) user_id: String,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) updated_at: DateTime<Utc>,
    /// Creation order, the tie-breaker of equal `created_at`.
    pub(crate) seq: u64,
}

/// Backup statuses the simulator produces (docs/OPENSTACK-API.md §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum BackupStatus {
    Creating,
    Available,
    Error,
    Deleting,
    /// Being restored to a volume (set by tests: the simulator has no
    /// restore call).
    Restoring,
}

impl BackupStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            BackupStatus::Creating => "creating",
            BackupStatus::Available => "available",
            BackupStatus::Error => "error",
            BackupStatus::Deleting => "deleting",
            BackupStatus::Restoring => "restoring",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<BackupStatus> {
        [
            BackupStatus::Creating,
            BackupStatus::Available,
            BackupStatus::Error,
            BackupStatus::Deleting,
            BackupStatus::Restoring,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// How a backup in `creating` will end, decided when it is accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    Success,
    /// `release_snapshot`: whether the snapshot goes back to `available`.
    /// A backup that never reached a backup service leaves it `backing-up`
    /// (exchange 25); a failure inside the service releases it.
    Failure {
        reason: String,
        release_snapshot: bool,
    },
}

/// A backup.
#[derive(Debug, Clone)]
pub(crate) struct Backup {
    pub(crate) id: String,
    pub(crate) project_id: String,
    pub(crate) user_id: String,
    pub(crate) name: Option<String>,
    pub(crate) description: Option<String>,
    pub(crate) volume_id: String,
    pub(crate) snapshot_id: Option<String>,
    pub(crate) size: u64,
    pub(crate) status: BackupStatus,
    pub(crate) fail_reason: Option<String>,
    /// The zone asked for (3.51), shown while creating; the serving zone after.
    pub(crate) availability_zone: Option<String>,
    pub(crate) container: Option<String>,
    /// Container asked for at create; Cinder names one itself when null.
    pub(crate) requested_container: Option<String>,
    pub(crate) object_count: u64,
    pub(crate) is_incremental: bool,
    pub(crate) parent_id: Option<String>,
    pub(crate) dependents: u32,
    pub(crate) metadata: BTreeMap<String, String>,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) updated_at: DateTime<Utc>,
    pub(crate) data_timestamp: DateTime<Utc>,
    pub(crate) seq: u64,
    pub(crate) outcome: Outcome,
    /// Status the volume had before a volume (not snapshot) backup.
    pub(crate) volume_previous_status: Option<String>,
    pub(crate) delete_started: Option<DateTime<Utc>>,
}

/// An issued token.
#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub(crate) project_id: String,
    pub(crate) project_name: String,
    pub(crate) user_id: String,
    pub(crate) user_name: String,
    pub(crate) roles: Vec<String>,
    pub(crate) methods: Vec<&'static str>,
    /// `(id, name)` of the application credential used, if any.
    pub(crate) app_credential: Option<(String, String)>,
    pub(crate) issued_at: DateTime<Utc>,
    pub(crate) expires_at: DateTime<Utc>,
    pub(crate) audit_id: String,
}

impl Token {
    pub(crate) fn is_valid(&self, now: DateTime<Utc>) -> bool {
        now < self.expires_at
    }

    pub(crate) fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

/// Where the two listeners are, once started.
#[derive(Debug, Clone)]
pub(crate) struct Urls {
    /// `http://127.0.0.1:P1/v3`
    pub(crate) keystone: String,
    /// `http://127.0.0.1:P2`
    pub(crate) cinder: String,
}

/// Ids of catalog entries, fixed for the life of the simulator as on a real cloud.
#[derive(Debug, Clone)]
pub(crate) struct CatalogIds {
    pub(crate) services: BTreeMap<&'static str, String>,
    pub(crate) endpoints: BTreeMap<(&'static str, &'static str), String>,
}

/// Usage of the backup resources of one project.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct BackupUsage {
    pub(crate) backups: i64,
    pub(crate) gigabytes: i64,
}

/// All simulator data.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) backup_duration: Duration,
    pub(crate) token_ttl: Duration,
    pub(crate) max_page_limit: usize,
    /// See [`SimConfig::public_host`].
    pub(crate) public_host: Option<String>,
    pub(crate) availability_zones: Vec<String>,
    pub(crate) max_microversion: crate::Microversion,
    pub(crate) fail_reason: Option<String>,
    /// In seed order, which the clouds.yaml keeps; only their quotas change.
    pub(crate) tenants: Vec<Tenant>,
    /// Position in `tenants` of each project id.
    tenant_index: HashMap<String, usize>,
    volumes: Table<Volume>,
    snapshots: Table<Snapshot>,
    backups: Backups,
    pub(crate) tokens: HashMap<String, Token>,
    pub(crate) role_ids: BTreeMap<String, String>,
    pub(crate) catalog: CatalogIds,
    pub(crate) urls: Option<Urls>,
    next_seq: u64,
}

impl State {
    /// Builds the state from a seed. Seeded snapshots get `created_at` one
    /// second apart, the first the newest, so lists keep the seed's order.
    pub(crate) fn new(config: SimConfig, seed: Seed) -> State {
        let now = Utc::now();
        let mut state = State {
            backup_duration: config.backup_duration,
            token_ttl: config.token_ttl,
            max_page_limit: config.max_page_limit.max(1),
            public_host: config.public_host,
            availability_zones: config.availability_zones,
            max_microversion: config.max_microversion,
            fail_reason: None,
            tenants: Vec::new(),
            tenant_index: HashMap::new(),
            volumes: Table::default(),
            snapshots: Table::default(),
            backups: Backups::default(),
            tokens: HashMap::new(),
            role_ids: BTreeMap::new(),
            catalog: CatalogIds::new(),
            urls: None,
            next_seq: 0,
        };
        for tenant in seed.tenants {
            for role in tenant
                .app_credentials
                .iter()
                .flat_map(|c| &c.roles)
                .chain(tenant.users.iter().flat_map(|u| &u.roles))
            {
                state.role_id(role);
            }
            let count = tenant.volumes.len() + tenant.snapshots.len();
            let oldest = now - chrono::Duration::seconds(i64::try_from(count).unwrap_or(0) + 60);
            state
                .tenant_index
                .entry(tenant.project_id.clone())
                .or_insert(state.tenants.len());
            state.tenants.push(Tenant {
                name: tenant.name,
                project_id: tenant.project_id.clone(),
                app_credentials: tenant.app_credentials,
                users: tenant.users,
                quotas: tenant.quotas,
            });
            for volume in tenant.volumes {
                state.insert_volume(&tenant.project_id, volume, oldest);
            }
            for (i, snapshot) in tenant.snapshots.into_iter().enumerate() {
                let age = i64::try_from(i + 1).unwrap_or(0);
                let created = now - chrono::Duration::seconds(age);
                state.insert_snapshot(&tenant.project_id, snapshot, created);
            }
        }
        // Sequence numbers break `created_at` ties; make them follow age,
        // seed order among equals (the order they were stored in).
        let mut by_age: Vec<(DateTime<Utc>, u64, String)> = state
            .snapshots
            .iter()
            .map(|s| (s.created_at, s.seq, s.id.clone()))
            .collect();
        by_age.sort();
        for (_, _, id) in by_age {
            let seq = state.next_seq;
            if let Some(snapshot) = state.snapshots.get_mut(&id) {
                snapshot.seq = seq;
            }
            state.next_seq += 1;
        }
        state
    }

    fn next_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    /// The id of a role name, made up once per name.
    pub(crate) fn role_id(&mut self, name: &str) -> String {
        self.role_ids
            .entry(name.to_owned())
            .or_insert_with(ids::hex_id)
            .clone()
    }

    /// The user id that owns resources of a project (first credential's or user's).
    fn owner_of(&self, project_id: &str) -> String {
        self.tenant(project_id)
            .and_then(|t| {
                t.app_credentials
                    .first()
                    .map(|c| c.user_id.clone())
                    .or_else(|| t.users.first().map(|u| u.id.clone()))
            })
            .unwrap_or_default()
    }

    pub(crate) fn insert_volume(&mut self, project_id: &str, v: VolumeSeed, at: DateTime<Utc>) {
        let user_id = self.owner_of(project_id);
        self.volumes.insert(Volume {
            id: v.id,
            project_id: project_id.to_owned(),
            name: v.name,
            size: v.size,
            status: v.status,
            user_id,
            created_at: at,
            updated_at: at,
        });
    }

    pub(crate) fn insert_snapshot(&mut self, project_id: &str, s: SnapshotSeed, at: DateTime<Utc>) {
        let user_id = self.owner_of(project_id);
        let seq = self.next_seq();
        self.snapshots.insert(Snapshot {
            id: s.id,
            project_id: project_id.to_owned(),
            name: s.name,
            description: s.description,
            volume_id: s.volume_id,
            status: s.status,
            metadata: s.metadata,
            user_id,
            created_at: at,
            updated_at: at,
            seq,
        });
    }

    /// Removes a snapshot at once; its backups keep their `snapshot_id`.
    pub(crate) fn remove_snapshot(&mut self, id: &str) {
        self.snapshots.remove(id);
    }

    pub(crate) fn tenant(&self, project_id: &str) -> Option<&Tenant> {
        let index = *self.tenant_index.get(project_id)?;
        self.tenants.get(index)
    }

    pub(crate) fn tenant_mut(&mut self, project_id: &str) -> Option<&mut Tenant> {
        let index = *self.tenant_index.get(project_id)?;
        self.tenants.get_mut(index)
    }

    pub(crate) fn volume(&self, id: &str) -> Option<&Volume> {
        self.volumes.get(id)
    }

    /// A project's volumes, in no particular order.
    pub(crate) fn volumes_of<'a>(&'a self, project_id: &str) -> impl Iterator<Item = &'a Volume> {
        self.volumes.of_project(project_id)
    }

    pub(crate) fn snapshot(&self, id: &str) -> Option<&Snapshot> {
        self.snapshots.get(id)
    }

    /// A snapshot to change in place (status, `updated_at`).
    pub(crate) fn snapshot_mut(&mut self, id: &str) -> Option<&mut Snapshot> {
        self.snapshots.get_mut(id)
    }

    /// The snapshots, for lookups and listings; changes go through `State`.
    pub(crate) fn snapshots(&self) -> &Table<Snapshot> {
        &self.snapshots
    }

    pub(crate) fn backup(&self, id: &str) -> Option<&Backup> {
        self.backups.get(id)
    }

    /// The backups, for lookups and listings; changes go through `State`,
    /// which keeps their indexes in step.
    pub(crate) fn backups(&self) -> &Backups {
        &self.backups
    }

    /// Backups charged to a project: every backup that exists, whatever its
    /// status (quota is released only when a delete completes).
    pub(crate) fn backup_usage(&self, project_id: &str) -> BackupUsage {
        self.backups.usage(project_id)
    }

    /// Applies every transition that is due by now.
    pub(crate) fn advance(&mut self) {
        self.advance_finishing_at(None);
    }

    /// [`State::advance`]; a backup ends at `forced` when given (made to
    /// end now, as Cinder stamps a backup when it ends), else at its start
    /// plus the backup duration (the moment it ended while nobody looked).
    fn advance_finishing_at(&mut self, forced: Option<DateTime<Utc>>) {
        let now = Utc::now();
        let took =
            chrono::Duration::from_std(self.backup_duration).unwrap_or(chrono::Duration::MAX);
        let end = |start: DateTime<Utc>| start.checked_add_signed(took);
        for (id, start) in self
            .backups
            .due(|start| end(start).is_some_and(|e| e <= now))
        {
            match self.backups.get(&id).map(|b| b.status) {
                Some(BackupStatus::Creating) => {
                    // `due` only hands out starts whose end is known.
                    let at = forced.unwrap_or_else(|| end(start).unwrap_or(now));
                    self.finish_backup(&id, at);
                }
                Some(BackupStatus::Deleting) => self.remove_backup(&id),
                _ => {}
            }
        }
    }

    /// Ends a `creating` backup as decided at accept time.
    fn finish_backup(&mut self, id: &str, at: DateTime<Utc>) {
        let default_zone = self
            .availability_zones
            .first()
            .cloned()
            .unwrap_or_else(|| "nova".to_owned());
        let Some(release_snapshot) = self.backups.update(id, |backup| {
            backup.updated_at = at;
            match backup.outcome.clone() {
                Outcome::Success => {
                    backup.status = BackupStatus::Available;
                    backup.availability_zone =
                        Some(backup.availability_zone.clone().unwrap_or(default_zone));
                    // Cinder's Swift/POSIX drivers name the container after the id
                    // (`a6/97/a697368d-...`, exchange 17) unless one was given.
                    backup.container =
                        Some(backup.requested_container.clone().unwrap_or_else(|| {
                            format!(
                                "{}/{}/{}",
                                backup.id.get(0..2).unwrap_or(""),
                                backup.id.get(2..4).unwrap_or(""),
                                backup.id
                            )
                        }));
                    // An incremental backup of unchanged data writes no object (exchange 44).
                    backup.object_count = u64::from(!backup.is_incremental);
                    true
                }
                Outcome::Failure {
                    reason,
                    release_snapshot,
                } => {
                    backup.status = BackupStatus::Error;
                    backup.fail_reason = Some(reason);
                    release_snapshot
                }
            }
        }) else {
            return;
        };
        let Some(backup) = self.backups.get(id) else {
            return;
        };
        let snapshot_id = backup.snapshot_id.clone();
        let volume_id = backup.volume_id.clone();
        let previous = backup.volume_previous_status.clone();
        if let Some(snapshot_id) = snapshot_id {
            if release_snapshot
                && let Some(snapshot) = self.snapshots.get_mut(&snapshot_id)
                && snapshot.status == "backing-up"
            {
                snapshot.status = "available".to_owned();
                snapshot.updated_at = at;
            }
        } else if let Some(previous) = previous
            && let Some(volume) = self.volumes.get_mut(&volume_id)
            && volume.status == "backing-up"
        {
            volume.status = previous;
            volume.updated_at = at;
        }
    }

    /// Removes a backup for good, releasing its parent.
    pub(crate) fn remove_backup(&mut self, id: &str) {
        let Some(backup) = self.backups.remove(id) else {
            return;
        };
        if let Some(parent) = backup.parent_id {
            self.backups.update(&parent, |parent| {
                parent.dependents = parent.dependents.saturating_sub(1);
            });
        }
    }

    /// Stores a new backup in `creating` and marks its source busy.
    pub(crate) fn insert_backup(&mut self, mut backup: Backup) -> String {
        backup.seq = self.next_seq();
        let id = backup.id.clone();
        if let Some(parent) = &backup.parent_id {
            self.backups.update(parent, |parent| parent.dependents += 1);
        }
        let at = backup.created_at;
        match backup.snapshot_id.clone() {
            Some(snapshot_id) => {
                if let Some(snapshot) = self.snapshots.get_mut(&snapshot_id) {
                    snapshot.status = "backing-up".to_owned();
                    snapshot.updated_at = at;
                }
            }
            None => {
                if let Some(volume) = self.volumes.get_mut(&backup.volume_id) {
                    backup.volume_previous_status = Some(volume.status.clone());
                    volume.status = "backing-up".to_owned();
                    volume.updated_at = at;
                }
            }
        }
        self.backups.insert(backup);
        id
    }

    /// Puts a backup in `deleting` from `at`; it is gone once the backup
    /// duration has passed.
    pub(crate) fn start_deleting(&mut self, id: &str, at: DateTime<Utc>) {
        self.backups.update(id, |backup| {
            backup.status = BackupStatus::Deleting;
            backup.updated_at = at;
            backup.delete_started = Some(at);
        });
    }

    /// Decides how a new backup ends: a zone without a backup service fails
    /// it (exchange 24), else `fail_backups` if set, else success.
    pub(crate) fn outcome_for(&self, requested_zone: Option<&str>) -> Outcome {
        if let Some(zone) = requested_zone
            && !self.availability_zones.iter().any(|z| z == zone)
        {
            return Outcome::Failure {
                reason: NO_SERVICE_REASON.to_owned(),
                release_snapshot: false,
            };
        }
        match &self.fail_reason {
            Some(reason) => Outcome::Failure {
                reason: reason.clone(),
                release_snapshot: true,
            },
            None => Outcome::Success,
        }
    }

    /// Sets a backup's status; unknown statuses are ignored.
    pub(crate) fn set_backup_status(&mut self, id: &str, status: &str) {
        let Some(status) = BackupStatus::parse(status) else {
            return;
        };
        let now = Utc::now();
        self.backups.update(id, |backup| {
            backup.status = status;
            backup.updated_at = now;
        });
    }

    /// Makes every pending transition due now.
    pub(crate) fn finish_pending(&mut self) {
        let saved = self.backup_duration;
        self.backup_duration = Duration::ZERO;
        self.advance_finishing_at(Some(Utc::now()));
        self.backup_duration = saved;
    }
}

impl CatalogIds {
    fn new() -> CatalogIds {
        let mut services = BTreeMap::new();
        let mut endpoints = BTreeMap::new();
        for service in ["identity", "block-storage", "volumev3"] {
            services.insert(service, ids::hex_id());
            let interfaces: &[&'static str] = if service == "identity" {
                &["public", "internal", "admin"]
            } else {
                &["public"]
            };
            for interface in interfaces {
                endpoints.insert((service, *interface), ids::hex_id());
            }
        }
        CatalogIds {
            services,
            endpoints,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A state with the demo tenants and a backup of each of tenant-a's
    /// three snapshots, accepted an hour, half an hour and a minute ago.
    fn state_with_backups(duration: Duration) -> (State, Vec<String>) {
        let config = SimConfig {
            backup_duration: duration,
            ..SimConfig::default()
        };
        let seed = Seed::demo();
        let project = seed.tenants[0].project_id.clone();
        let snapshots: Vec<(String, String)> = seed.tenants[0]
            .snapshots
            .iter()
            .map(|s| (s.id.clone(), s.volume_id.clone()))
            .collect();
        let mut state = State::new(config, seed);
        let now = Utc::now();
        let mut ids = Vec::new();
        for ((snapshot_id, volume_id), minutes) in snapshots.into_iter().zip([60, 30, 1]) {
            let at = now - chrono::Duration::minutes(minutes);
            let id = format!("backup-{minutes}");
            state.insert_backup(Backup {
                id: id.clone(),
                project_id: project.clone(),
                user_id: String::new(),
                name: None,
                description: None,
                volume_id,
                snapshot_id: Some(snapshot_id),
                size: 1,
                status: BackupStatus::Creating,
                fail_reason: None,
                availability_zone: None,
                container: None,
                requested_container: None,
                object_count: 0,
                is_incremental: false,
                parent_id: None,
                dependents: 0,
                metadata: BTreeMap::new(),
                created_at: at,
                updated_at: at,
                data_timestamp: at,
                seq: 0,
                outcome: Outcome::Success,
                volume_previous_status: None,
                delete_started: None,
            });
            ids.push(id);
        }
        (state, ids)
    }

    fn status(state: &State, id: &str) -> BackupStatus {
        state.backup(id).map(|b| b.status).expect("the backup")
    }

    #[test]
    fn a_duration_shortened_at_run_time_finishes_what_is_now_due_only() {
        // A day: nothing is due.
        let (mut state, ids) = state_with_backups(Duration::from_secs(24 * 3600));
        state.advance();
        assert!(
            ids.iter()
                .all(|id| status(&state, id) == BackupStatus::Creating)
        );

        // Ten minutes: the backups of an hour and half an hour ago are done,
        // each at its own start plus the duration; a minute ago's is not.
        state.backup_duration = Duration::from_secs(600);
        state.advance();
        assert_eq!(status(&state, &ids[0]), BackupStatus::Available);
        assert_eq!(status(&state, &ids[1]), BackupStatus::Available);
        assert_eq!(status(&state, &ids[2]), BackupStatus::Creating);
        let first = state.backup(&ids[0]).expect("the backup");
        assert_eq!(
            first.updated_at,
            first.created_at + chrono::Duration::minutes(10)
        );
        let snapshot = first.snapshot_id.clone().expect("a snapshot backup");
        assert_eq!(
            state.snapshot(&snapshot).map(|s| s.status.as_str()),
            Some("available")
        );

        state.backup_duration = Duration::ZERO;
        state.advance();
        assert_eq!(status(&state, &ids[2]), BackupStatus::Available);
        assert_eq!(state.backups().counts().creating, 0);
    }
}
