//! Retention: finished jobs are purged `--retention` after they finished,
//! idempotency keys `--idempotency-ttl` after first use, and job events
//! `--event-retention` after they happened, in small
//! batches so that the store is never held for long and the worker never
//! waits on a purge.

use std::time::Duration;

use super::{model::ago, service::Jobs};
use crate::store;

/// Rows deleted per statement.
const BATCH: u32 = 500;

/// Pause between batches, so other writers get the store in between.
const PAUSE: Duration = Duration::from_millis(20);

/// What one purge removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Purged {
    /// Finished jobs.
    pub jobs: u64,
    /// Idempotency keys.
    pub keys: u64,
    /// Job events.
    pub events: u64,
}

impl Jobs {
    /// Purges what retention says may go, batch by batch.
    pub async fn purge(&self) -> Result<Purged, store::Error> {
        let jobs_before = ago(self.settings.retention);
        let keys_before = ago(self.settings.idempotency_ttl);
        let events_before = ago(self.settings.event_retention);
        let purged = Purged {
            jobs: in_batches(|| self.store.purge_finished(jobs_before, BATCH)).await?,
            keys: in_batches(|| self.store.purge_keys(keys_before, BATCH)).await?,
            events: in_batches(|| self.store.purge_events(events_before, BATCH)).await?,
        };
        if purged != Purged::default() {
            tracing::info!(
                jobs = purged.jobs,
                keys = purged.keys,
                events = purged.events,
                "purged by retention"
            );
        }
        Ok(purged)
    }

    /// Purges every `interval` until the task is dropped.
    pub async fn purge_every(&self, interval: Duration) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            if let Err(e) = self.purge().await {
                tracing::warn!(error = %e, "purge failed; will try again");
            }
        }
    }
}

/// Runs `batch` until it deletes less than a full batch, pausing between
/// batches; how many rows it deleted in all.
async fn in_batches<F, Fut>(mut batch: F) -> Result<u64, store::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<u64, store::Error>>,
{
    let mut total = 0;
    loop {
        let n = batch().await?;
        total += n;
        if n < u64::from(BATCH) {
            return Ok(total);
        }
        tokio::time::sleep(PAUSE).await;
    }
}
