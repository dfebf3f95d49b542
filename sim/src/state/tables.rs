//! The stores of volumes, snapshots and backups and the indexes over them.
//! Each store owns its indexes and is the only code that changes them, so a
//! lookup never falls out of step with the data: rows come and go only
//! through `insert` and `remove`, and a backup changes only through
//! `update`, which re-indexes it. A volume or snapshot is indexed by its id
//! and project alone, which never change, so it may change in place.
//!
//! The point is cost. The gateway's worker lists one project's `creating`
//! backups every cycle, and every access to the state first applies the
//! transitions that are due; with tens of thousands of backups a linear
//! scan there made the simulator slower than the gateway it tests. Here a
//! lookup by id is a hash lookup, a listing costs what it lists, and the
//! due transitions are found in O(due + log n).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};

use super::{Backup, BackupStatus, BackupUsage, Snapshot, Volume};

/// A row that belongs to a project and is known by its id.
pub(crate) trait Owned {
    fn id(&self) -> &str;
    fn project_id(&self) -> &str;
}

impl Owned for Volume {
    fn id(&self) -> &str {
        &self.id
    }

    fn project_id(&self) -> &str {
        &self.project_id
    }
}

impl Owned for Snapshot {
    fn id(&self) -> &str {
        &self.id
    }

    fn project_id(&self) -> &str {
        &self.project_id
    }
}

/// Volumes or snapshots by id, with the ids of each project.
#[derive(Debug)]
pub(crate) struct Table<T> {
    rows: HashMap<String, T>,
    by_project: HashMap<String, BTreeSet<String>>,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Table {
            rows: HashMap::new(),
            by_project: HashMap::new(),
        }
    }
}

impl<T: Owned> Table<T> {
    /// Stores a row, replacing the one of the same id (in whatever project).
    pub(crate) fn insert(&mut self, row: T) {
        self.remove(row.id());
        self.by_project
            .entry(row.project_id().to_owned())
            .or_default()
            .insert(row.id().to_owned());
        self.rows.insert(row.id().to_owned(), row);
    }

    /// Removes a row; `None` if there is none of that id.
    pub(crate) fn remove(&mut self, id: &str) -> Option<T> {
        let row = self.rows.remove(id)?;
        if let Some(ids) = self.by_project.get_mut(row.project_id()) {
            ids.remove(id);
            if ids.is_empty() {
                self.by_project.remove(row.project_id());
            }
        }
        Some(row)
    }

    pub(crate) fn get(&self, id: &str) -> Option<&T> {
        self.rows.get(id)
    }

    /// The row to change in place. Its id and project are what it is
    /// indexed by: change them through [`Table::insert`] instead.
    pub(crate) fn get_mut(&mut self, id: &str) -> Option<&mut T> {
        self.rows.get_mut(id)
    }

    /// A project's rows, in no particular order.
    pub(crate) fn of_project<'a>(&'a self, project_id: &str) -> impl Iterator<Item = &'a T> {
        self.by_project
            .get(project_id)
            .into_iter()
            .flatten()
            .filter_map(|id| self.rows.get(id))
    }

    /// Every row, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        self.rows.values()
    }
}

/// A backup's place in creation order: `(created_at, seq)`, unique since
/// `seq` is. Neither part changes after the backup is stored.
type Order = (DateTime<Utc>, u64);

/// Ids in creation order.
type Ordered = BTreeMap<Order, String>;

/// One project's backups, whole and by status, and what they charge.
#[derive(Debug, Default)]
struct ProjectBackups {
    all: Ordered,
    by_status: HashMap<BackupStatus, Ordered>,
    /// Sums kept wide so that removing undoes adding exactly, however
    /// large a size; read through [`BackupUsage`], clamped to `i64`.
    count: i128,
    gigabytes: i128,
}

/// What a backup is indexed by, taken before and after a change.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Keys {
    project_id: String,
    volume_id: String,
    order: Order,
    status: BackupStatus,
    size: u64,
    /// When its pending transition started, if one is under way.
    pending: Option<DateTime<Utc>>,
}

impl Keys {
    fn of(backup: &Backup) -> Keys {
        Keys {
            project_id: backup.project_id.clone(),
            volume_id: backup.volume_id.clone(),
            order: (backup.created_at, backup.seq),
            status: backup.status,
            size: backup.size,
            pending: pending_since(backup),
        }
    }
}

/// When a backup's transition started: a `creating` one at its creation,
/// a `deleting` one when its delete was accepted. One put in `deleting` by
/// a test without a delete has no start and never goes away by itself.
fn pending_since(backup: &Backup) -> Option<DateTime<Utc>> {
    match backup.status {
        BackupStatus::Creating => Some(backup.created_at),
        BackupStatus::Deleting => backup.delete_started,
        BackupStatus::Available | BackupStatus::Error | BackupStatus::Restoring => None,
    }
}

/// How many backups are in each status, over all projects.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackupCounts {
    /// Being made.
    pub creating: usize,
    /// Done.
    pub available: usize,
    /// Failed.
    pub error: usize,
    /// Being deleted.
    pub deleting: usize,
    /// Being restored (only ever set by a test).
    pub restoring: usize,
}

impl BackupCounts {
    /// All backups that exist.
    pub fn total(&self) -> usize {
        self.creating + self.available + self.error + self.deleting + self.restoring
    }
}

/// The backups by id, with their indexes: by project (whole, by status,
/// and its usage), by volume, and the pending transitions by start.
#[derive(Debug, Default)]
pub(crate) struct Backups {
    rows: HashMap<String, Backup>,
    projects: HashMap<String, ProjectBackups>,
    by_volume: HashMap<String, Ordered>,
    /// `creating` and `deleting` backups by the start of their transition.
    /// Every pending backup takes the same duration, so they end in this
    /// order whatever the duration is set to, including when it changes.
    pending: BTreeMap<Order, String>,
}

impl Backups {
    /// Stores a new backup; its `seq` must be unique.
    pub(crate) fn insert(&mut self, backup: Backup) {
        self.remove(&backup.id);
        self.index(&backup.id, &Keys::of(&backup));
        self.rows.insert(backup.id.clone(), backup);
    }

    /// Removes a backup; `None` if there is none of that id.
    pub(crate) fn remove(&mut self, id: &str) -> Option<Backup> {
        let backup = self.rows.remove(id)?;
        self.unindex(&Keys::of(&backup));
        Some(backup)
    }

    pub(crate) fn get(&self, id: &str) -> Option<&Backup> {
        self.rows.get(id)
    }

    /// Changes a backup in place and re-indexes it; `None` if there is
    /// none of that id. The id must not change.
    pub(crate) fn update<R>(
        &mut self,
        id: &str,
        change: impl FnOnce(&mut Backup) -> R,
    ) -> Option<R> {
        let backup = self.rows.get_mut(id)?;
        let before = Keys::of(backup);
        let result = change(backup);
        debug_assert_eq!(backup.id, id, "a backup's id never changes");
        let after = Keys::of(backup);
        if before != after {
            self.unindex(&before);
            self.index(id, &after);
        }
        Some(result)
    }

    /// The backups of one project (every project's with `None`), only those
    /// in `status` when given, in no particular order.
    pub(crate) fn select<'a>(
        &'a self,
        project_id: Option<&str>,
        status: Option<BackupStatus>,
    ) -> Vec<&'a Backup> {
        let projects: Vec<&ProjectBackups> = match project_id {
            Some(id) => self.projects.get(id).into_iter().collect(),
            None => self.projects.values().collect(),
        };
        projects
            .into_iter()
            .filter_map(|project| match status {
                Some(status) => project.by_status.get(&status),
                None => Some(&project.all),
            })
            .flat_map(BTreeMap::values)
            .filter_map(|id| self.rows.get(id))
            .collect()
    }

    /// A project's backups, newest first (by `created_at`, then `seq`).
    pub(crate) fn newest_first<'a>(&'a self, project_id: &str) -> impl Iterator<Item = &'a Backup> {
        self.projects
            .get(project_id)
            .into_iter()
            .flat_map(|project| project.all.values().rev())
            .filter_map(|id| self.rows.get(id))
    }

    /// The backups of a volume, of any project and status.
    pub(crate) fn of_volume<'a>(&'a self, volume_id: &str) -> impl Iterator<Item = &'a Backup> {
        self.by_volume
            .get(volume_id)
            .into_iter()
            .flat_map(BTreeMap::values)
            .filter_map(|id| self.rows.get(id))
    }

    /// What a project's backups charge its quotas.
    pub(crate) fn usage(&self, project_id: &str) -> BackupUsage {
        let clamp = |n: i128| i64::try_from(n).unwrap_or(i64::MAX);
        self.projects
            .get(project_id)
            .map_or_else(BackupUsage::default, |project| BackupUsage {
                backups: clamp(project.count),
                gigabytes: clamp(project.gigabytes),
            })
    }

    /// How many backups there are in each status.
    pub(crate) fn counts(&self) -> BackupCounts {
        let mut counts = BackupCounts::default();
        for project in self.projects.values() {
            for (status, ids) in &project.by_status {
                let slot = match status {
                    BackupStatus::Creating => &mut counts.creating,
                    BackupStatus::Available => &mut counts.available,
                    BackupStatus::Error => &mut counts.error,
                    BackupStatus::Deleting => &mut counts.deleting,
                    BackupStatus::Restoring => &mut counts.restoring,
                };
                *slot += ids.len();
            }
        }
        counts
    }

    /// The pending backups whose transition, started at `start`, is over by
    /// `is_due(start)`, oldest first, with that start. Stops at the first
    /// that is not: `is_due` must hold for every start before one it holds
    /// for, as "start + duration <= now" does.
    pub(crate) fn due(
        &self,
        is_due: impl Fn(DateTime<Utc>) -> bool,
    ) -> Vec<(String, DateTime<Utc>)> {
        self.pending
            .iter()
            .take_while(|((start, _), _)| is_due(*start))
            .map(|((start, _), id)| (id.clone(), *start))
            .collect()
    }

    fn index(&mut self, id: &str, keys: &Keys) {
        let project = self.projects.entry(keys.project_id.clone()).or_default();
        project.all.insert(keys.order, id.to_owned());
        project
            .by_status
            .entry(keys.status)
            .or_default()
            .insert(keys.order, id.to_owned());
        project.count += 1;
        project.gigabytes += i128::from(keys.size);
        self.by_volume
            .entry(keys.volume_id.clone())
            .or_default()
            .insert(keys.order, id.to_owned());
        if let Some(start) = keys.pending {
            self.pending.insert((start, keys.order.1), id.to_owned());
        }
    }

    fn unindex(&mut self, keys: &Keys) {
        if let Some(project) = self.projects.get_mut(&keys.project_id) {
            project.all.remove(&keys.order);
            if let Some(ids) = project.by_status.get_mut(&keys.status) {
                ids.remove(&keys.order);
                if ids.is_empty() {
                    project.by_status.remove(&keys.status);
                }
            }
            project.count -= 1;
            project.gigabytes -= i128::from(keys.size);
            if project.all.is_empty() {
                self.projects.remove(&keys.project_id);
            }
        }
        if let Some(ids) = self.by_volume.get_mut(&keys.volume_id) {
            ids.remove(&keys.order);
            if ids.is_empty() {
                self.by_volume.remove(&keys.volume_id);
            }
        }
        if let Some(start) = keys.pending {
            self.pending.remove(&(start, keys.order.1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Outcome;

    fn backup(n: u64, project: &str, volume: &str, status: BackupStatus) -> Backup {
        let at = DateTime::<Utc>::UNIX_EPOCH
            + chrono::Duration::seconds(i64::try_from(n / 2).unwrap_or(0));
        Backup {
            id: format!("b{n}"),
            project_id: project.to_owned(),
            user_id: String::new(),
            name: None,
            description: None,
            volume_id: volume.to_owned(),
            snapshot_id: None,
            size: n + 1,
            status,
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
            seq: n,
            outcome: Outcome::Success,
            volume_previous_status: None,
            delete_started: None,
        }
    }

    /// Every index agrees with a scan of the rows.
    fn assert_in_step(backups: &Backups) {
        let all: Vec<&Backup> = backups.rows.values().collect();
        let projects: BTreeSet<&str> = all.iter().map(|b| b.project_id.as_str()).collect();
        let statuses = [
            BackupStatus::Creating,
            BackupStatus::Available,
            BackupStatus::Error,
            BackupStatus::Deleting,
            BackupStatus::Restoring,
        ];
        let sorted_ids = |mut found: Vec<&Backup>| {
            found.sort_by_key(|b| (b.created_at, b.seq));
            found.into_iter().map(|b| b.id.clone()).collect::<Vec<_>>()
        };
        for project in projects.iter().copied().map(Some).chain([None]) {
            for status in statuses.map(Some).into_iter().chain([None]) {
                let scanned: Vec<&Backup> = all
                    .iter()
                    .copied()
                    .filter(|b| project.is_none_or(|p| b.project_id == p))
                    .filter(|b| status.is_none_or(|s| b.status == s))
                    .collect();
                let selected = backups.select(project, status);
                assert_eq!(sorted_ids(selected), sorted_ids(scanned));
            }
        }
        for project in &projects {
            let mine: Vec<&&Backup> = all.iter().filter(|b| b.project_id == *project).collect();
            let usage = backups.usage(project);
            assert_eq!(usage.backups, i64::try_from(mine.len()).unwrap_or(-1));
            let gigabytes: u64 = mine.iter().map(|b| b.size).sum();
            assert_eq!(usage.gigabytes, i64::try_from(gigabytes).unwrap_or(-1));
            let mut newest: Vec<&Backup> = mine.into_iter().copied().collect();
            newest.sort_by_key(|b| std::cmp::Reverse((b.created_at, b.seq)));
            let listed: Vec<&str> = backups
                .newest_first(project)
                .map(|b| b.id.as_str())
                .collect();
            let expected: Vec<&str> = newest.iter().map(|b| b.id.as_str()).collect();
            assert_eq!(listed, expected);
        }
        let mut pending: Vec<(DateTime<Utc>, u64, String)> = all
            .iter()
            .filter_map(|b| pending_since(b).map(|start| (start, b.seq, b.id.clone())))
            .collect();
        pending.sort();
        let due: Vec<String> = backups
            .due(|_| true)
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        let expected: Vec<String> = pending.into_iter().map(|(_, _, id)| id).collect();
        assert_eq!(due, expected);
        assert_eq!(backups.counts().total(), all.len());
    }

    #[test]
    fn indexes_stay_in_step_through_inserts_updates_and_removals() {
        let mut backups = Backups::default();
        let statuses = [
            BackupStatus::Creating,
            BackupStatus::Available,
            BackupStatus::Deleting,
        ];
        for n in 0..60 {
            let project = if n % 3 == 0 { "p1" } else { "p2" };
            let volume = if n % 2 == 0 { "v1" } else { "v2" };
            let mut b = backup(
                n,
                project,
                volume,
                statuses[usize::try_from(n % 3).unwrap_or(0)],
            );
            if n % 4 == 0 {
                b.delete_started = Some(b.created_at + chrono::Duration::seconds(100));
            }
            backups.insert(b);
        }
        assert_in_step(&backups);

        for n in (0..60).step_by(7) {
            backups.update(&format!("b{n}"), |b| b.status = BackupStatus::Error);
        }
        for n in (1..60).step_by(5) {
            backups.update(&format!("b{n}"), |b| {
                b.status = BackupStatus::Deleting;
                b.delete_started = Some(b.created_at);
            });
        }
        for n in (2..60).step_by(9) {
            backups.remove(&format!("b{n}"));
        }
        assert!(backups.remove("missing").is_none());
        assert!(backups.update("missing", |_| ()).is_none());
        assert_in_step(&backups);
        assert_eq!(
            backups.of_volume("v1").count() + backups.of_volume("v2").count(),
            backups.rows.len()
        );

        for id in backups.rows.keys().cloned().collect::<Vec<_>>() {
            backups.remove(&id);
        }
        assert!(backups.projects.is_empty() && backups.by_volume.is_empty());
        assert!(backups.pending.is_empty());
    }

    #[test]
    fn due_hands_out_the_oldest_starts_and_stops_at_the_first_not_due() {
        let mut backups = Backups::default();
        for n in 0..10 {
            backups.insert(backup(n, "p", "v", BackupStatus::Creating));
        }
        // Starts are n / 2 seconds after the epoch: 0, 0, 1, 1, 2, ...
        let cut = DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::seconds(2);
        let due = backups.due(|start| start < cut);
        let ids: Vec<&str> = due.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(ids, ["b0", "b1", "b2", "b3"]);
    }
}
