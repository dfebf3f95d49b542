//! Job events: every change of a job a caller may want pushed, as the store
//! records it (in the transaction of the change; see the `job_events`
//! migrations), and following a tenant's events as they come, for
//! `GET /events`.
//!
//! Events are numbered per tenant. A follower remembers the last number it
//! handed out and asks the store for the tenant's events above it, so a
//! client resuming after event N (`Last-Event-ID`) gets every later event
//! once, in order, whichever replica wrote it. It looks again whenever a
//! job changes (this process's writes, and other replicas' as the store
//! announces them), and at least every [`RECHECK`].

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::{DateTime, Utc};

use super::{
    Error,
    model::{JobId, JobState},
    service::Jobs,
    waiters::TenantChanges,
};
use crate::problem::Problem;

/// Events read from the store at once.
const PAGE: u32 = 100;

/// Longest a follower goes without looking at the store, should an
/// announcement of a change be lost (a dropped notification connection).
const RECHECK: Duration = Duration::from_secs(5);

/// Pause after the store failed to answer, before the next look.
const STORE_RETRY: Duration = Duration::from_secs(1);

/// What happened to a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// The job was recorded.
    Created,
    /// A POST of the backup to Cinder is being made.
    Submitted,
    /// Cinder has the backup (`creating`).
    Running,
    /// The backup is `available`.
    Succeeded,
    /// The job ended without a backup, or the backup failed.
    Failed,
    /// Cancelled before Cinder had it.
    Cancelled,
    /// A submission failed for now: the job waits for its next attempt.
    RetryScheduled,
    /// Cinder refused the request while its caller waited: the caller got
    /// the refusal and the job is gone.
    Removed,
    /// A running job's expected completion changed.
    EstimateChanged,
}

impl EventKind {
    /// Every kind, in the order of a job's life.
    pub const ALL: [EventKind; 9] = [
        EventKind::Created,
        EventKind::Submitted,
        EventKind::Running,
        EventKind::Succeeded,
        EventKind::Failed,
        EventKind::Cancelled,
        EventKind::RetryScheduled,
        EventKind::Removed,
        EventKind::EstimateChanged,
    ];

    /// The name the store keeps.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Created => "created",
            EventKind::Submitted => "submitted",
            EventKind::Running => "running",
            EventKind::Succeeded => "succeeded",
            EventKind::Failed => "failed",
            EventKind::Cancelled => "cancelled",
            EventKind::RetryScheduled => "retry_scheduled",
            EventKind::Removed => "removed",
            EventKind::EstimateChanged => "estimate_changed",
        }
    }

    /// The event's type as callers see it: `job.<kind>`.
    pub fn event_type(self) -> &'static str {
        match self {
            EventKind::Created => "job.created",
            EventKind::Submitted => "job.submitted",
            EventKind::Running => "job.running",
            EventKind::Succeeded => "job.succeeded",
            EventKind::Failed => "job.failed",
            EventKind::Cancelled => "job.cancelled",
            EventKind::RetryScheduled => "job.retry_scheduled",
            EventKind::Removed => "job.removed",
            EventKind::EstimateChanged => "job.estimate_changed",
        }
    }
}

impl std::str::FromStr for EventKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown event kind {s:?}"))
    }
}

/// One event of a tenant, as the store keeps it: the job as it was right
/// after the change.
#[derive(Debug, Clone, PartialEq)]
pub struct JobEvent {
    /// Its number among the tenant's events (1, 2, 3, ...).
    pub seq: i64,
    /// What happened.
    pub kind: EventKind,
    /// The job.
    pub job_id: JobId,
    /// The job's snapshot.
    pub snapshot_id: String,
    /// The job's state after the change.
    pub state: JobState,
    /// The Cinder backup, once Cinder has it.
    pub backup_id: Option<String>,
    /// Why the job failed; while queued, the last transient failure.
    pub error: Option<Problem>,
    /// When a queued job will be submitted again.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When the change was made.
    pub occurred_at: DateTime<Utc>,
    /// While running: when the backup is expected to complete.
    pub expected_completion_at: Option<DateTime<Utc>>,
}

/// Where a tenant's events stand: the number of the latest (0 before the
/// first), and how far they may have been purged (every number up to it
/// may be gone; the purge goes by age, which need not follow numbers).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventRange {
    /// The latest event's number.
    pub last: i64,
    /// The highest number that may have been purged (0: none).
    pub purged_through: i64,
}

impl EventRange {
    /// Whether a client that saw every event up to `after` can go on from
    /// there without a gap: none of the events after it was purged.
    pub fn resumable_after(&self, after: i64) -> bool {
        after >= self.purged_through
    }
}

/// Which of a tenant's events a follower wants; `None` matches all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Only this job's events.
    pub job_id: Option<JobId>,
    /// Only events of jobs of this snapshot.
    pub snapshot_id: Option<String>,
}

/// The open event streams of each tenant, capped per tenant.
#[derive(Debug)]
pub(super) struct StreamSlots {
    max_per_tenant: usize,
    open: Mutex<HashMap<String, usize>>,
}

impl StreamSlots {
    pub(super) fn new(max_per_tenant: usize) -> Arc<Self> {
        Arc::new(StreamSlots {
            max_per_tenant,
            open: Mutex::new(HashMap::new()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        // The counts stay consistent under every panic point.
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A slot for one more stream of `project_id`; `None` at the cap.
    fn take(self: &Arc<Self>, project_id: &str) -> Option<StreamSlot> {
        let mut open = self.lock();
        let count = open.entry(project_id.to_owned()).or_default();
        if *count >= self.max_per_tenant {
            return None;
        }
        *count += 1;
        Some(StreamSlot {
            slots: self.clone(),
            project_id: project_id.to_owned(),
        })
    }

    /// Streams open now, all tenants together.
    pub(super) fn total(&self) -> usize {
        self.lock().values().sum()
    }
}

/// One open stream's place; given back when dropped.
#[derive(Debug)]
struct StreamSlot {
    slots: Arc<StreamSlots>,
    project_id: String,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.slots.lock();
        if let Some(count) = open.get_mut(&self.project_id) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.project_id);
            }
        }
    }
}

/// What a follower hands out next.
#[derive(Debug, Clone, PartialEq)]
pub enum Followed {
    /// The next event.
    Event(Box<JobEvent>),
    /// No event the follower wants up to this number: where a client
    /// resumes from (the start of a stream, and after events its filter
    /// left out).
    Position(i64),
}

/// Follows one tenant's events from a given number on.
pub struct EventFollower {
    jobs: Arc<Jobs>,
    project_id: String,
    filter: EventFilter,
    /// The last event handed out (or skipped over, when starting "now").
    after: i64,
    /// The position not yet handed out, if any.
    position: Option<i64>,
    pending: VecDeque<JobEvent>,
    changes: TenantChanges,
    _slot: StreamSlot,
}

impl Jobs {
    /// Starts following the tenant's events: those numbered above `after`,
    /// or, without it, those to come. Refused past the tenant's cap on open
    /// streams.
    pub async fn follow_events(
        self: &Arc<Self>,
        tenant: &str,
        after: Option<u64>,
        filter: EventFilter,
    ) -> Result<EventFollower, Error> {
        if let Some(snapshot_id) = &filter.snapshot_id {
            super::validation::check_snapshot_id(snapshot_id)?;
        }
        let (_, project_id) = self.tenant(tenant).await?;
        let slot = self
            .event_streams
            .take(&project_id)
            .ok_or(Error::TooManyEventStreams(self.settings.max_event_streams))?;
        // Subscribed before the first look, so no change in between is missed.
        let changes = self.waiters.tenant_changes(&project_id);
        let range = self.store.event_range(&project_id).await?;
        let after = match after {
            None => range.last,
            Some(n) => {
                let after = i64::try_from(n).unwrap_or(i64::MAX);
                if after > range.last {
                    return Err(Error::Invalid(format!(
                        "`Last-Event-ID` (or `last_event_id`) {n} is past this tenant's latest event ({})",
                        range.last
                    )));
                }
                if !range.resumable_after(after) {
                    return Err(Error::EventsExpired {
                        after: n,
                        purged_through: range.purged_through,
                    });
                }
                after
            }
        };
        Ok(EventFollower {
            jobs: self.clone(),
            project_id,
            filter,
            after,
            position: Some(after),
            pending: VecDeque::new(),
            changes,
            _slot: slot,
        })
    }

    /// Event streams open now.
    pub fn event_streams(&self) -> usize {
        self.event_streams.total()
    }
}

impl EventFollower {
    /// The next event (or position), waiting for it as long as it takes;
    /// `None` once the process is stopping.
    pub async fn next(&mut self) -> Option<Followed> {
        loop {
            if let Some(position) = self.position.take() {
                return Some(Followed::Position(position));
            }
            if let Some(event) = self.pending.pop_front() {
                self.after = event.seq;
                return Some(Followed::Event(Box::new(event)));
            }
            // Seen before the stop is checked: a stop announced after this
            // point wakes the wait below.
            self.changes.mark_seen();
            if self.jobs.is_stopping() {
                return None;
            }
            let pause = match self.look().await {
                Ok(Look::Found) => continue,
                Ok(Look::Nothing) => RECHECK,
                Ok(Look::Gap) => {
                    // The client resumes with the last id it saw, and is
                    // told its events are gone (410).
                    tracing::info!(
                        after = self.after,
                        "events this stream was to send were purged; ending it"
                    );
                    return None;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not read the tenant's events; will look again");
                    STORE_RETRY
                }
            };
            let _ = tokio::time::timeout(pause, self.changes.changed()).await;
        }
    }

    /// Reads the events after the last handed out. A filtered follower
    /// that finds none moves past the events it skipped, so that it does
    /// not read them again at every change of the tenant's other jobs.
    async fn look(&mut self) -> Result<Look, crate::store::Error> {
        let store = &self.jobs.store;
        let filtered = self.filter != EventFilter::default();
        // Read first: every event up to it is already visible below.
        let last = if filtered {
            store.event_range(&self.project_id).await?.last
        } else {
            0
        };
        let events = store
            .events_after(&self.project_id, self.after, &self.filter, PAGE)
            .await?;
        // Events after the position purged since the stream opened (a
        // client resuming near the end of retention): what was read may
        // have a gap. Unfiltered, events are numbered without holes, so
        // only a jump in the numbers makes it worth asking.
        let maybe_gap = filtered || events.first().is_some_and(|e| e.seq != self.after + 1);
        if maybe_gap
            && !store
                .event_range(&self.project_id)
                .await?
                .resumable_after(self.after)
        {
            return Ok(Look::Gap);
        }
        if !events.is_empty() {
            self.pending.extend(events);
            return Ok(Look::Found);
        }
        if last > self.after {
            self.after = last;
            self.position = Some(last);
            return Ok(Look::Found);
        }
        Ok(Look::Nothing)
    }
}

/// What a look at the store found.
enum Look {
    /// Something to hand out.
    Found,
    /// Nothing new.
    Nothing,
    /// Events the follower was to hand out were purged.
    Gap,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_reads_back_from_its_name() {
        for kind in EventKind::ALL {
            assert_eq!(kind.as_str().parse::<EventKind>(), Ok(kind));
            assert_eq!(kind.event_type(), format!("job.{}", kind.as_str()));
        }
        assert!("started".parse::<EventKind>().is_err());
    }

    #[test]
    fn a_client_resumes_only_where_no_later_event_was_purged() {
        let purged_through = |purged_through| EventRange {
            last: 10,
            purged_through,
        };
        assert!(purged_through(0).resumable_after(0), "nothing purged");
        assert!(purged_through(3).resumable_after(3), "the next is kept");
        assert!(!purged_through(3).resumable_after(2), "event 3 may be gone");
        assert!(purged_through(10).resumable_after(10), "saw the last");
        assert!(!purged_through(10).resumable_after(9), "event 10 is gone");
        let fresh = EventRange::default();
        assert!(fresh.resumable_after(0), "a tenant without events");
    }

    #[test]
    fn a_tenant_gets_its_cap_of_streams_and_a_slot_back_when_one_ends() {
        let slots = StreamSlots::new(2);
        let first = slots.take("p1");
        let second = slots.take("p1");
        assert!(first.is_some() && second.is_some());
        assert!(slots.take("p1").is_none(), "over the cap");
        let other = slots.take("p2");
        assert!(other.is_some(), "another tenant has its own cap");
        assert_eq!(slots.total(), 3);
        drop(first);
        let again = slots.take("p1");
        assert!(again.is_some(), "a slot comes back");
        drop((second, other, again));
        assert_eq!(slots.total(), 0);
    }
}
