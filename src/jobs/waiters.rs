//! Long-poll waiters: each waits on its own job, and a change wakes only
//! the waiters of that job (not every waiter at every change). The number
//! of waiters is capped; past the cap a long poll answers at once. Every
//! change also bumps one counter that event streams watch (they follow
//! all of a tenant's jobs, not one).

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
    /// Bumped at every change of any job.
    changes: watch::Sender<u64>,
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

    /// A receiver that sees every change of any job from now on.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn bump(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Wakes the waiters of `id`, if any, and the event streams.
    pub fn notify(&self, id: JobId) {
        self.bump();
        let notify = self.lock().jobs.get(&id).map(|(n, _)| n.clone());
        if let Some(notify) = notify {
            notify.notify_waiters();
        }
    }

    /// Wakes every waiter (changes may have been missed): each reads its
    /// job again.
    pub fn notify_all(&self) {
        self.bump();
        let all: Vec<Arc<Notify>> = self.lock().jobs.values().map(|(n, _)| n.clone()).collect();
        for notify in all {
            notify.notify_waiters();
        }
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

        waiters.notify(a);

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
