//! An in-memory view of a store that one process owns alone (SQLite): the
//! unfinished jobs, and the finished ones read or written lately, kept in
//! step with every write this process makes through it.
//!
//! Why: with SQLite, each query is handed to the connection's own thread
//! and back, which made `GET /jobs/{id}` cost several times a `/healthz`,
//! and the worker read and decoded every unfinished job at every cycle. A
//! job read now comes from memory when the job is known, and the worker's
//! scan never touches the database.
//!
//! It is exact only because every write of the store passes through it: a
//! SQLite file belongs to one process (the README says so; PostgreSQL,
//! shared by replicas, is never wrapped). The rules that keep it exact
//! whatever the interleaving of concurrent calls:
//! - a write's result enters the view only once the database has
//!   committed it, and a row version never replaces a newer one (two
//!   writers finishing out of order leave the newer one);
//! - a job that a write may have changed without the view knowing how (a
//!   failed or refused write, or one whose caller went away before it
//!   ended) is dropped from it, and read again before the worker's next
//!   scan or at its next use;
//! - a read that started before a job was removed (deleted, purged,
//!   dropped) never puts it back: removals bump an epoch, and a read
//!   stores what it found only if the epoch has not moved since it began;
//! - `shown` is only ever set in the view when the database has it set, so
//!   the view may miss a `shown` (costing one more harmless mark) but never
//!   invent one (which would let a shown job be deleted).

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, VecDeque},
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{
    ActiveJobs, ChangeListener, Error, Fence, HeldLease, JobFilter, JobStore, KeyUse, Reservation,
    TenantKey,
};
use crate::jobs::events::{EventFilter, EventRange, JobEvent};
use crate::jobs::model::{Job, JobId};

/// Finished jobs kept in view, the most recently read or written: enough
/// for callers following their jobs to the end, bounded in memory.
const RECENTLY_FINISHED: usize = 4096;

/// The store `S` with the view in front of it.
pub struct CachedStore<S> {
    inner: S,
    view: Mutex<View>,
}

#[derive(Default)]
struct View {
    /// Queued and running jobs, by id (ids grow with time: oldest first),
    /// shared with the worker's scans.
    active: BTreeMap<JobId, Arc<Job>>,
    /// Finished jobs lately used, each with the number of its last use.
    finished: HashMap<JobId, (u64, Job)>,
    /// `(use number, id)` in the order of use; an entry whose number is no
    /// longer its job's last is skipped when evicting.
    finished_order: VecDeque<(u64, JobId)>,
    uses: u64,
    /// Jobs a write may have changed without the view knowing how: read
    /// again from the database before the worker's next scan.
    dirty: BTreeSet<JobId>,
    /// Bumped by every removal (see the module's rules).
    epoch: u64,
    /// Unfinished rows that could not be read when the view was loaded.
    unreadable: Vec<(String, String)>,
}

impl View {
    fn get(&self, id: JobId) -> Option<&Job> {
        self.active
            .get(&id)
            .map(Arc::as_ref)
            .or_else(|| self.finished.get(&id).map(|(_, job)| job))
    }

    fn get_mut(&mut self, id: JobId) -> Option<&mut Job> {
        match self.active.get_mut(&id) {
            Some(job) => Some(Arc::make_mut(job)),
            None => self.finished.get_mut(&id).map(|(_, job)| job),
        }
    }

    /// Puts `job` in view unless a newer version of it is there.
    fn put(&mut self, job: Job) {
        if self
            .get(job.id)
            .is_some_and(|known| known.version > job.version)
        {
            return;
        }
        let id = job.id;
        if job.state.is_done() {
            self.active.remove(&id);
            self.uses += 1;
            self.finished.insert(id, (self.uses, job));
            self.finished_order.push_back((self.uses, id));
            self.evict();
        } else {
            self.finished.remove(&id);
            self.active.insert(id, Arc::new(job));
        }
    }

    /// Keeps at most [`RECENTLY_FINISHED`] finished jobs, the last used.
    fn evict(&mut self) {
        while self.finished.len() > RECENTLY_FINISHED
            || self.finished_order.len() > 2 * RECENTLY_FINISHED
        {
            let Some((number, oldest)) = self.finished_order.pop_front() else {
                break;
            };
            if self
                .finished
                .get(&oldest)
                .is_some_and(|(last, _)| *last == number)
            {
                self.finished.remove(&oldest);
            }
        }
    }

    /// Follows an update of `job`: written, the job as it now is in the
    /// database; refused (another writer came first, or the lease ended)
    /// or failed, the database's row is the truth, read again.
    fn written(&mut self, job: &Job, written: bool) {
        if !written {
            self.forget(job.id);
            return;
        }
        let mut stored = as_stored(job);
        stored.version = job.version + 1;
        // `update` leaves `shown` as it is in the database: keep what the
        // view knew of it, adding only a set flag.
        stored.shown = job.shown || self.get(job.id).is_some_and(|known| known.shown);
        self.put(stored);
    }

    /// Drops a job whose row may have changed: read again when next used,
    /// and before the worker's next scan.
    fn forget(&mut self, id: JobId) {
        self.active.remove(&id);
        self.finished.remove(&id);
        self.dirty.insert(id);
        self.epoch += 1;
    }
}

/// A job as the database holds it: times to the millisecond, as both
/// stores keep them, so that a job reads the same from memory as from disk.
fn as_stored(job: &Job) -> Job {
    let ms = |t: DateTime<Utc>| DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t);
    Job {
        created_at: ms(job.created_at),
        updated_at: ms(job.updated_at),
        started_at: job.started_at.map(ms),
        finished_at: job.finished_at.map(ms),
        posted_at: job.posted_at.map(ms),
        next_attempt_at: job.next_attempt_at.map(ms),
        expected_completion_at: job.expected_completion_at.map(ms),
        ..job.clone()
    }
}

impl<S: JobStore> CachedStore<S> {
    /// The view of `inner`, loaded with its unfinished jobs.
    pub async fn load(inner: S) -> Result<Self, Error> {
        let scan = inner.active().await?;
        let mut view = View {
            unreadable: scan.unreadable,
            ..View::default()
        };
        for job in scan.jobs {
            view.put(Arc::unwrap_or_clone(job));
        }
        Ok(CachedStore {
            inner,
            view: Mutex::new(view),
        })
    }

    fn view(&self) -> MutexGuard<'_, View> {
        // Maps only: nothing a panic elsewhere could leave half-done.
        self.view.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn forget(&self, id: JobId) {
        self.view().forget(id);
    }

    /// Reads again the jobs a write left unknown, so that the view holds
    /// every unfinished job before the worker scans it. A row that can no
    /// longer be read is reported with the unreadable ones, not retried.
    async fn reload_dirty(&self) -> Result<(), Error> {
        let dirty: Vec<JobId> = self.view().dirty.iter().copied().collect();
        for id in dirty {
            let epoch = self.view().epoch;
            let found = match self.inner.get(id).await {
                Ok(found) => found,
                Err(Error::Corrupt(reason)) => {
                    let mut view = self.view();
                    view.dirty.remove(&id);
                    view.unreadable
                        .retain(|(known, _)| *known != id.to_string());
                    view.unreadable.push((id.to_string(), reason));
                    continue;
                }
                Err(e) => return Err(e),
            };
            let mut view = self.view();
            if view.epoch != epoch {
                // Something was removed meanwhile: the next scan reads it.
                continue;
            }
            view.dirty.remove(&id);
            if let Some(job) = found {
                view.put(job);
            }
        }
        Ok(())
    }

    /// A guard over a write of `ids`: should the write's future be dropped
    /// before its outcome reached the view (its caller went away; the
    /// database may have committed it all the same), the jobs are read
    /// again before the worker's next scan.
    fn in_flight(&self, ids: impl IntoIterator<Item = JobId>) -> InFlight<'_> {
        InFlight {
            view: &self.view,
            ids: ids.into_iter().collect(),
        }
    }
}

/// See [`CachedStore::in_flight`]; [`InFlight::settled`] once the view has
/// the write's outcome.
struct InFlight<'a> {
    view: &'a Mutex<View>,
    ids: Vec<JobId>,
}

impl InFlight<'_> {
    fn settled(mut self) {
        self.ids.clear();
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if self.ids.is_empty() {
            return;
        }
        let mut view = self.view.lock().unwrap_or_else(|e| e.into_inner());
        for id in self.ids.drain(..) {
            view.forget(id);
        }
    }
}

#[async_trait]
impl<S: JobStore> JobStore for CachedStore<S> {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    async fn insert(&self, job: &Job, key: Option<KeyUse<'_>>) -> Result<(), Error> {
        let in_flight = self.in_flight([job.id]);
        let result = self.inner.insert(job, key).await;
        match &result {
            Ok(()) => self.view().put(as_stored(job)),
            // Refused in a transaction that wrote nothing.
            Err(Error::ActiveJobExists | Error::KeyLost) => {}
            Err(_) => self.forget(job.id),
        }
        in_flight.settled();
        result
    }

    async fn get(&self, id: JobId) -> Result<Option<Job>, Error> {
        let epoch = {
            let view = self.view();
            if let Some(job) = view.get(id) {
                return Ok(Some(job.clone()));
            }
            view.epoch
        };
        let found = self.inner.get(id).await?;
        if let Some(job) = &found {
            let mut view = self.view();
            if view.epoch == epoch {
                view.dirty.remove(&id);
                view.put(job.clone());
            }
        }
        Ok(found)
    }

    async fn list(
        &self,
        project_id: &str,
        filter: &JobFilter,
        limit: u32,
        before: Option<JobId>,
    ) -> Result<Vec<Job>, Error> {
        self.inner.list(project_id, filter, limit, before).await
    }

    async fn update(&self, job: &Job, fence: Option<&Fence>) -> Result<bool, Error> {
        let in_flight = self.in_flight([job.id]);
        let result = self.inner.update(job, fence).await;
        self.view().written(job, matches!(result, Ok(true)));
        in_flight.settled();
        result
    }

    async fn update_all(&self, jobs: &[Job], fence: Option<&Fence>) -> Result<Vec<bool>, Error> {
        let in_flight = self.in_flight(jobs.iter().map(|j| j.id));
        let result = self.inner.update_all(jobs, fence).await;
        let mut view = self.view();
        for (i, job) in jobs.iter().enumerate() {
            let written = result.as_ref().is_ok_and(|w| w.get(i) == Some(&true));
            view.written(job, written);
        }
        drop(view);
        in_flight.settled();
        result
    }

    async fn delete(
        &self,
        id: JobId,
        version: i64,
        key: Option<KeyUse<'_>>,
    ) -> Result<bool, Error> {
        let in_flight = self.in_flight([id]);
        let result = self.inner.delete(id, version, key).await;
        self.forget(id);
        in_flight.settled();
        result
    }

    async fn mark_shown(&self, id: JobId) -> Result<(), Error> {
        let result = self.inner.mark_shown(id).await;
        match &result {
            Ok(()) => {
                if let Some(job) = self.view().get_mut(id) {
                    job.shown = true;
                }
            }
            Err(_) => self.forget(id),
        }
        result
    }

    async fn active(&self) -> Result<ActiveJobs, Error> {
        self.reload_dirty().await?;
        let view = self.view();
        Ok(ActiveJobs {
            jobs: view.active.values().cloned().collect(),
            unreadable: view.unreadable.clone(),
        })
    }

    async fn active_for_snapshot(
        &self,
        project_id: &str,
        snapshot_id: &str,
    ) -> Result<Option<Job>, Error> {
        self.inner
            .active_for_snapshot(project_id, snapshot_id)
            .await
    }

    async fn reserve_key(
        &self,
        key: KeyUse<'_>,
        request: &str,
        now: DateTime<Utc>,
    ) -> Result<Reservation, Error> {
        self.inner.reserve_key(key, request, now).await
    }

    async fn take_over_key(
        &self,
        key: KeyUse<'_>,
        created_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, Error> {
        self.inner.take_over_key(key, created_at, now).await
    }

    async fn mark_key_answered(&self, key: KeyUse<'_>) -> Result<(), Error> {
        self.inner.mark_key_answered(key).await
    }

    async fn release_key(&self, key: KeyUse<'_>) -> Result<(), Error> {
        self.inner.release_key(key).await
    }

    async fn purge_finished(&self, before: DateTime<Utc>, batch: u32) -> Result<u64, Error> {
        let result = self.inner.purge_finished(before, batch).await;
        // Which rows went is not told: when some did, the finished jobs are
        // read again when next used (unfinished jobs are never purged).
        if !matches!(result, Ok(0)) {
            let mut view = self.view();
            view.finished.clear();
            view.finished_order.clear();
            view.epoch += 1;
        }
        result
    }

    async fn purge_keys(&self, before: DateTime<Utc>, batch: u32) -> Result<u64, Error> {
        self.inner.purge_keys(before, batch).await
    }

    // Events are read from the store: a stream reads each once.
    async fn events_after(
        &self,
        project_id: &str,
        after: i64,
        filter: &EventFilter,
        limit: u32,
    ) -> Result<Vec<JobEvent>, Error> {
        self.inner
            .events_after(project_id, after, filter, limit)
            .await
    }

    async fn event_range(&self, project_id: &str) -> Result<EventRange, Error> {
        self.inner.event_range(project_id).await
    }

    async fn purge_events(&self, before: DateTime<Utc>, batch: u32) -> Result<u64, Error> {
        self.inner.purge_events(before, batch).await
    }

    async fn ping(&self) -> Result<(), Error> {
        self.inner.ping().await
    }

    async fn count_by_state(&self) -> Result<Vec<(String, i64)>, Error> {
        self.inner.count_by_state().await
    }

    async fn acquire_lease(
        &self,
        tenant: &TenantKey,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<i64>, Error> {
        self.inner.acquire_lease(tenant, holder, ttl).await
    }

    async fn renew_leases(&self, holder: &str, ttl: Duration) -> Result<Vec<HeldLease>, Error> {
        self.inner.renew_leases(holder, ttl).await
    }

    async fn release_lease(&self, tenant: &TenantKey, holder: &str) -> Result<(), Error> {
        self.inner.release_lease(tenant, holder).await
    }

    async fn heartbeat(&self, replica: &str, ttl: Duration) -> Result<u32, Error> {
        self.inner.heartbeat(replica, ttl).await
    }

    async fn leave(&self, replica: &str) -> Result<(), Error> {
        self.inner.leave(replica).await
    }

    fn webhooks(&self) -> &dyn super::WebhookStore {
        self.inner.webhooks()
    }

    fn watch_changes(&self, listener: ChangeListener) {
        self.inner.watch_changes(listener);
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;

    use super::*;
    use crate::{jobs::model::BackupOptions, store::SqliteStore};

    fn job(snapshot: &str) -> Job {
        Job::new(
            "project".into(),
            "cloud".into(),
            snapshot.into(),
            "volume".into(),
            BackupOptions::default(),
        )
    }

    async fn active_ids(store: &impl JobStore) -> Vec<JobId> {
        let scan = store.active().await.expect("scan");
        scan.jobs.iter().map(|j| j.id).collect()
    }

    async fn store() -> (tempfile::TempDir, CachedStore<SqliteStore>) {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("jobs.db").display());
        let inner = SqliteStore::connect(&url, 2).await.expect("store");
        let store = CachedStore::load(inner).await.expect("view");
        (dir, store)
    }

    #[test]
    fn an_older_version_never_replaces_a_newer_one() {
        let mut view = View::default();
        let mut newer = job("s");
        newer.version = 3;
        let mut older = newer.clone();
        older.version = 2;
        older.attempts = 9;
        view.put(newer.clone());
        view.put(older);
        assert_eq!(view.get(newer.id).map(|j| j.attempts), Some(0));
    }

    #[test]
    fn finished_jobs_in_view_are_bounded_and_the_last_used_stay() {
        let mut view = View::default();
        let mut first = job("first");
        first.succeed();
        view.put(first.clone());
        for i in 0..2 * RECENTLY_FINISHED {
            let mut other = job(&format!("s{i}"));
            other.succeed();
            view.put(other);
            if i % 100 == 0 {
                // Used again now and then: it stays among the last used.
                view.put(first.clone());
            }
        }
        assert!(view.finished.len() <= RECENTLY_FINISHED);
        assert!(view.finished_order.len() <= 2 * RECENTLY_FINISHED);
        assert!(view.get(first.id).is_some(), "the last used stays");
    }

    #[tokio::test]
    async fn a_write_that_lost_its_race_leaves_the_job_read_again_from_the_database() {
        let (_dir, store) = store().await;
        let mut queued = job("s");
        store.insert(&queued, None).await.expect("insert");
        // Another writer's version is in the database; this copy is stale.
        let mut other = queued.clone();
        other.attempts = 5;
        assert!(store.update(&other, None).await.expect("update"));
        queued.attempts = 1;
        assert!(!store.update(&queued, None).await.expect("update"));

        // Still scanned by the worker, as the database holds it.
        let active = store.active().await.expect("scan");
        assert_eq!(active.jobs.len(), 1);
        assert_eq!(active.jobs[0].attempts, 5);
        assert_eq!(active.jobs[0].version, 1);
        let read = store.get(queued.id).await.expect("get").expect("found");
        assert_eq!((read.attempts, read.version), (5, 1));
    }

    #[tokio::test]
    async fn a_job_reads_the_same_from_memory_as_from_the_database() {
        let (dir, store) = store().await;
        let mut written = job("s");
        written.options.metadata.insert("team".into(), "db".into());
        store.insert(&written, None).await.expect("insert");
        written.start("backup".into(), Some("req-1".into()));
        assert!(store.update(&written, None).await.expect("update"));
        store.mark_shown(written.id).await.expect("shown");
        let from_memory = store.get(written.id).await.expect("get").expect("found");

        drop(store);
        let url = format!("sqlite://{}", dir.path().join("jobs.db").display());
        let fresh = SqliteStore::connect(&url, 2).await.expect("store");
        let from_disk = fresh.get(written.id).await.expect("get").expect("found");
        assert_eq!(from_memory, from_disk);
        assert!(from_memory.shown);
    }

    #[tokio::test]
    async fn a_write_whose_caller_went_away_is_read_again_for_the_worker() {
        let (dir, store) = store().await;
        let url = format!("sqlite://{}", dir.path().join("jobs.db").display());
        let database = SqliteStore::connect(&url, 1).await.expect("store");
        // Polled until it waits for SQLite, then dropped (a caller gone):
        // the statement may still be committed on the connection's thread.
        let mut landed = 0;
        for i in 0..20 {
            let queued = job(&format!("s{i}"));
            let mut write = Box::pin(store.insert(&queued, None));
            // Polled a few times, as a handler is between its awaits.
            let mut answered = false;
            for _ in 0..=i % 4 {
                answered = std::future::poll_fn(|cx| {
                    std::task::Poll::Ready(write.as_mut().poll(cx).is_ready())
                })
                .await;
                if answered {
                    break;
                }
                tokio::task::yield_now().await;
            }
            drop(write);
            if answered {
                continue;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            if database.get(queued.id).await.expect("get").is_some() {
                landed += 1;
            }
        }
        assert!(
            landed > 0,
            "no dropped write landed: the test proves nothing"
        );
        assert_eq!(active_ids(&store).await, active_ids(&database).await);
    }

    #[tokio::test]
    async fn a_deleted_job_leaves_the_view() {
        let (_dir, store) = store().await;
        let queued = job("s");
        store.insert(&queued, None).await.expect("insert");
        assert!(store.delete(queued.id, 0, None).await.expect("delete"));
        assert_eq!(store.get(queued.id).await.expect("get"), None);
        assert!(store.active().await.expect("scan").jobs.is_empty());
    }
}
