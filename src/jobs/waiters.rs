//! Long-poll waiters: each waits on its own job, and a change wakes only
//! the waiters of that job (not every waiter at every change). The number
//! of waiters is capped; past the cap a long poll answers at once. Every
//! change also bumps a counter of its tenant, which that tenant's event
//! streams watch (they follow all of a tenant's jobs, not one), and a
//! change whose tenant is unknown bumps the counter every stream watches.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use tokio::sync::{Notify, watch};

use super::model::JobId;

/// The registry of long polls in this process.
#[derive(Debug)]
pub struct Waiters {
    max: usize,
    inner: Mutex<Registry>,
    /// Bumped when every stream should look again.
    changes: watch::Sender<u64>,
    /// Per tenant with streams: bumped at every change of its jobs.
    tenants: Mutex<HashMap<String, watch::Sender<u64>>>,
    /// Bumped at every change of any job (webhook deliveries).
    any: watch::Sender<u64>,
}

/// What an event stream of one tenant watches: its tenant's changes, and
/// the announcements meant for every stream.
pub struct TenantChanges {
    own: watch::Receiver<u64>,
    all: watch::Receiver<u64>,
    registry: Arc<Waiters>,
    project_id: String,
}

impl Drop for TenantChanges {
    fn drop(&mut self) {
        // The tenant's last stream forgets its counter.
        let mut tenants = self.registry.lock_tenants();
        if tenants
            .get(&self.project_id)
            .is_some_and(|sender| sender.receiver_count() <= 1)
        {
            tenants.remove(&self.project_id);
        }
    }
}

impl TenantChanges {
    /// Marks every change so far as seen.
    pub fn mark_seen(&mut self) {
        self.own.borrow_and_update();
        self.all.borrow_and_update();
    }

    /// Waits for a change not yet seen; at once if there is one. Never
    /// returns while the registry lives and nothing changes; returns at once
    /// once it is gone.
    pub async fn changed(&mut self) {
        tokio::select! {
            _ = self.own.changed() => {}
            _ = self.all.changed() => {}
        }
    }
}

#[derive(Debug, Default)]
struct Registry {
    /// Per job: its wake-up and how many wait on it.
    jobs: HashMap<JobId, (Arc<Notify>, usize)>,
    total: usize,
}

/// One registered waiter; leaving the registry when dropped.
pub struct Waiter<'a> {
    registry: &'a Waiters,
    id: JobId,
    /// Notified at every change of the job.
    pub changed: Arc<Notify>,
}

impl Waiters {
    /// A registry admitting at most `max` waiters at once.
    pub fn new(max: usize) -> Self {
        Waiters {
            max,
            inner: Mutex::new(Registry::default()),
            changes: watch::Sender::new(0),
            tenants: Mutex::new(HashMap::new()),
            any: watch::Sender::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        // The registry's counts stay consistent under every panic point.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a waiter on `id`; `None` when the cap is reached.
    pub fn register(&self, id: JobId) -> Option<Waiter<'_>> {
        let mut registry = self.lock();
        if registry.total >= self.max {
            return None;
        }
        registry.total += 1;
        let entry = registry
            .jobs
            .entry(id)
            .or_insert_with(|| (Arc::new(Notify::new()), 0));
        entry.1 += 1;
        let changed = entry.0.clone();
        Some(Waiter {
            registry: self,
            id,
            changed,
        })
    }

    /// What sees every change of the tenant's jobs from now on.
    pub fn tenant_changes(self: &Arc<Self>, project_id: &str) -> TenantChanges {
        let own = self
            .lock_tenants()
            .entry(project_id.to_owned())
            .or_insert_with(|| watch::Sender::new(0))
            .subscribe();
        TenantChanges {
            own,
            all: self.changes.subscribe(),
            registry: self.clone(),
            project_id: project_id.to_owned(),
        }
    }

    fn lock_tenants(&self) -> std::sync::MutexGuard<'_, HashMap<String, watch::Sender<u64>>> {
        // A map of senders: consistent under every panic point.
        self.tenants.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn bump(sender: &watch::Sender<u64>) {
        sender.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Wakes the waiters of `id`, if any, and the event streams of its
    /// tenant (of every tenant, when `project_id` is unknown).
    pub fn notify(&self, id: JobId, project_id: Option<&str>) {
        Self::bump(&self.any);
        match project_id {
            Some(project_id) => {
                if let Some(sender) = self.lock_tenants().get(project_id) {
                    Self::bump(sender);
                }
            }
            None => Self::bump(&self.changes),
        }
        let notify = self.lock().jobs.get(&id).map(|(n, _)| n.clone());
        if let Some(notify) = notify {
            notify.notify_waiters();
        }
    }

    /// Wakes every waiter (changes may have been missed): each reads its
    /// job again.
    pub fn notify_all(&self) {
        Self::bump(&self.changes);
        Self::bump(&self.any);
        let all: Vec<Arc<Notify>> = self.lock().jobs.values().map(|(n, _)| n.clone()).collect();
        for notify in all {
            notify.notify_waiters();
        }
    }

    /// What sees every change of any job from now on.
    pub fn any_change(&self) -> watch::Receiver<u64> {
        self.any.subscribe()
    }

    /// Waiters registered now.
    pub fn count(&self) -> usize {
        self.lock().total
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        let mut registry = self.registry.lock();
        registry.total = registry.total.saturating_sub(1);
        if let Some(entry) = registry.jobs.get_mut(&self.id) {
            entry.1 -= 1;
            if entry.1 == 0 {
                registry.jobs.remove(&self.id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_change_wakes_only_the_waiters_of_that_job() {
        let waiters = Waiters::new(10);
        let (a, b) = (JobId::new(), JobId::new());
        let on_a = waiters.register(a).expect("room");
        let on_b = waiters.register(b).expect("room");
        let woken_a = on_a.changed.notified();
        let woken_b = on_b.changed.notified();
        tokio::pin!(woken_a, woken_b);
        woken_a.as_mut().enable();
        woken_b.as_mut().enable();

        waiters.notify(a, Some("p1"));

        assert!(
            tokio::time::timeout(Duration::from_secs(5), woken_a)
                .await
                .is_ok(),
            "a's waiter is woken"
        );
        assert!(
            futures_now(woken_b.as_mut()).is_none(),
            "b's waiter sleeps on"
        );
    }

    #[tokio::test]
    async fn a_change_wakes_the_streams_of_its_tenant_only_and_an_unknown_tenant_wakes_all() {
        let waiters = Arc::new(Waiters::new(10));
        let mut p1 = waiters.tenant_changes("p1");
        let mut p2 = waiters.tenant_changes("p2");
        p1.mark_seen();
        p2.mark_seen();

        waiters.notify(JobId::new(), Some("p1"));

        assert!(
            futures_now(Box::pin(p1.changed())).is_some(),
            "p1's stream wakes"
        );
        assert!(
            futures_now(Box::pin(p2.changed())).is_none(),
            "p2's sleeps on"
        );
        p1.mark_seen();
        waiters.notify(JobId::new(), None);
        assert!(
            futures_now(Box::pin(p1.changed())).is_some(),
            "unknown: p1 wakes"
        );
        assert!(
            futures_now(Box::pin(p2.changed())).is_some(),
            "unknown: p2 wakes"
        );
        p1.mark_seen();
        p2.mark_seen();
        waiters.notify_all();
        assert!(futures_now(Box::pin(p2.changed())).is_some(), "all wake");
        // A tenant is forgotten when its last stream ends.
        let second = waiters.tenant_changes("p1");
        drop(p1);
        assert!(waiters.lock_tenants().contains_key("p1"), "one stream left");
        drop((second, p2));
        assert!(waiters.lock_tenants().is_empty());
    }

    #[test]
    fn the_cap_refuses_waiters_and_dropping_frees_room() {
        let waiters = Waiters::new(2);
        let id = JobId::new();
        let first = waiters.register(id).expect("room");
        let _second = waiters.register(JobId::new()).expect("room");
        assert!(waiters.register(id).is_none(), "over the cap");
        drop(first);
        assert_eq!(waiters.count(), 1);
        assert!(waiters.register(id).is_some(), "room again");
    }

    /// Polls a future once: `Some` when it is ready now.
    fn futures_now<F: std::future::Future + Unpin>(future: F) -> Option<F::Output> {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut future = future;
        match std::pin::Pin::new(&mut future).poll(&mut cx) {
            std::task::Poll::Ready(v) => Some(v),
            std::task::Poll::Pending => None,
        }
    }
}
