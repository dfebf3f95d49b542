//! When a running backup is expected to complete, from the same tenant's
//! earlier backups of a similar size.
//!
//! Each succeeded backup gives a rate: seconds from Cinder's acceptance to
//! `available`, per GiB of its snapshot. A new backup of `size` GiB is
//! expected to take the median rate of the tenant's recent backups of the
//! same kind (full or incremental) between half and twice its size, times
//! its size. Without such a backup there is no estimate. A job still
//! running past its estimate gets a later one, from the slowest rate seen
//! (the estimate is an expectation, not a promise), and none once it is
//! past that too.
//!
//! The history lives in memory per tenant: read from the store (the
//! tenant's latest succeeded jobs) when it is first needed and again after
//! [`RELOAD`], so that backups finished by other replicas count, and added
//! to at once as this process sees jobs succeed. A job started by a request
//! is estimated from what is in memory (the read runs in the background,
//! never between Cinder's answer and the job's write); the worker gives a
//! job started without one its estimate at its next look.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};

use super::model::{Job, JobId, JobState, later};
use crate::store::{JobFilter, JobStore};

/// Backups of a tenant the estimates are made from (its latest).
const KEEP: usize = 50;

/// How long a tenant's history read from the store is used before it is
/// read again.
const RELOAD: Duration = Duration::from_secs(300);

/// One finished backup: its kind, its size and how long it took.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Incremental (else full).
    pub incremental: bool,
    /// The snapshot's size in GiB (at least 1).
    pub size_gib: u64,
    /// Seconds from Cinder's acceptance to `available`.
    pub seconds: f64,
}

impl Sample {
    /// The sample a succeeded job gives, if it has what it takes.
    pub fn of(job: &Job) -> Option<Sample> {
        if job.state != JobState::Succeeded {
            return None;
        }
        let took = (job.finished_at? - job.started_at?).num_milliseconds();
        let size_gib = job.size_gib?.max(1);
        (took >= 0).then(|| Sample {
            incremental: job.options.incremental.unwrap_or(false),
            size_gib,
            seconds: took as f64 / 1000.0,
        })
    }

    fn rate(&self) -> f64 {
        self.seconds / self.size_gib as f64
    }

    fn is_like(&self, incremental: bool, size_gib: u64) -> bool {
        self.incremental == incremental
            && self.size_gib.saturating_mul(2) >= size_gib
            && self.size_gib <= size_gib.saturating_mul(2)
    }
}

/// How long a backup of this kind and size is expected to take, from
/// `samples`: the median rate of the similar ones (or, `slowest`, their
/// highest) times its size; `None` without a similar one.
pub fn expected_duration(
    samples: &[Sample],
    incremental: bool,
    size_gib: u64,
    slowest: bool,
) -> Option<Duration> {
    let size_gib = size_gib.max(1);
    let mut rates: Vec<f64> = samples
        .iter()
        .filter(|s| s.is_like(incremental, size_gib))
        .map(Sample::rate)
        .collect();
    if rates.is_empty() {
        return None;
    }
    rates.sort_by(f64::total_cmp);
    let rate = if slowest {
        rates[rates.len() - 1]
    } else {
        let mid = rates.len() / 2;
        if rates.len().is_multiple_of(2) {
            (rates[mid - 1] + rates[mid]) / 2.0
        } else {
            rates[mid]
        }
    };
    Duration::try_from_secs_f64(rate * size_gib as f64).ok()
}

/// A tenant's recent backups, newest first, each under its job's id.
#[derive(Debug, Default)]
struct History {
    /// When it was last read from the store; `None`: never.
    read_at: Option<Instant>,
    samples: VecDeque<(JobId, Sample)>,
}

impl History {
    fn is_fresh(&self) -> bool {
        self.read_at.is_some_and(|at| at.elapsed() < RELOAD)
    }

    fn samples(&self) -> Vec<Sample> {
        self.samples.iter().map(|(_, s)| *s).collect()
    }

    /// Adds a backup unless it is held already.
    fn add(&mut self, id: JobId, sample: Sample) {
        if !self.samples.iter().any(|(held, _)| *held == id) {
            self.samples.push_front((id, sample));
            self.samples.truncate(KEEP);
        }
    }
}

/// The estimates of every tenant (a clone shares them).
#[derive(Debug, Default, Clone)]
pub struct Estimates {
    tenants: Arc<Mutex<HashMap<String, History>>>,
    /// Tenants whose history is being read in the background.
    reading: Arc<Mutex<HashSet<String>>>,
}

impl Estimates {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, History>> {
        // A map of plain values: consistent under every panic point.
        self.tenants.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// When the running `job` is expected to complete, from the history in
    /// memory only; a history missing or old is read in the background
    /// (once per tenant at a time) for the next estimates.
    pub fn completion_now(&self, store: &Arc<dyn JobStore>, job: &Job) -> Option<DateTime<Utc>> {
        let (fresh, samples) = self
            .lock()
            .get(&job.project_id)
            .map(|h| (h.is_fresh(), h.samples()))
            .unwrap_or_default();
        if !fresh {
            self.read_in_background(store, &job.project_id);
        }
        completion(job, &samples, false)
    }

    fn read_in_background(&self, store: &Arc<dyn JobStore>, project_id: &str) {
        let reading = self.reading.clone();
        if !reading
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(project_id.to_owned())
        {
            return;
        }
        let estimates = self.clone();
        let store = store.clone();
        let project_id = project_id.to_owned();
        tokio::spawn(async move {
            estimates.read(store.as_ref(), &project_id).await;
            reading
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&project_id);
        });
    }

    /// Adds a job that succeeded to its tenant's history.
    pub fn record(&self, job: &Job) {
        if let Some(sample) = Sample::of(job) {
            self.lock()
                .entry(job.project_id.clone())
                .or_default()
                .add(job.id, sample);
        }
    }

    /// When the running `job` is expected to complete: its start plus the
    /// expected duration (`slowest`: from the slowest similar backup).
    /// `None` without a size, a start or a similar earlier backup. Reads
    /// the tenant's history first when it is missing or old (the worker's
    /// way; a request uses [`Estimates::completion_now`]).
    pub async fn completion_of(
        &self,
        store: &dyn JobStore,
        job: &Job,
        slowest: bool,
    ) -> Option<DateTime<Utc>> {
        let held = self
            .lock()
            .get(&job.project_id)
            .filter(|h| h.is_fresh())
            .map(History::samples);
        let samples = match held {
            Some(samples) => samples,
            None => self.read(store, &job.project_id).await,
        };
        completion(job, &samples, slowest)
    }

    /// Reads the tenant's history from the store, keeping the backups
    /// recorded meanwhile; what it holds then. A store that fails leaves
    /// the history as it was.
    async fn read(&self, store: &dyn JobStore, project_id: &str) -> Vec<Sample> {
        let filter = JobFilter {
            state: Some(JobState::Succeeded),
            ..Default::default()
        };
        let read = store.list(project_id, &filter, KEEP as u32, None).await;
        let mut tenants = self.lock();
        let history = tenants.entry(project_id.to_owned()).or_default();
        match read {
            Ok(jobs) => {
                // The store's newest first; then those recorded here that
                // the read did not see yet, newer still.
                let recorded = std::mem::take(&mut history.samples);
                for job in jobs.iter().rev() {
                    if let Some(sample) = Sample::of(job) {
                        history.add(job.id, sample);
                    }
                }
                for (id, sample) in recorded.into_iter().rev() {
                    history.add(id, sample);
                }
                history.read_at = Some(Instant::now());
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not read the tenant's earlier backups; estimates go on from those held");
            }
        }
        history.samples()
    }
}

/// The job's start plus the expected duration of a backup like it, in
/// whole milliseconds (as the store keeps times; rounded: a rate times a
/// size comes back a hair under the duration it came from).
fn completion(job: &Job, samples: &[Sample], slowest: bool) -> Option<DateTime<Utc>> {
    let incremental = job.options.incremental.unwrap_or(false);
    let took = expected_duration(samples, incremental, job.size_gib?, slowest)?;
    let took = Duration::from_millis((took.as_secs_f64() * 1000.0).round() as u64);
    Some(later(job.started_at?, took))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(incremental: bool, size_gib: u64, seconds: f64) -> Sample {
        Sample {
            incremental,
            size_gib,
            seconds,
        }
    }

    #[test]
    fn the_median_rate_of_similar_backups_scales_with_size() {
        let history = [
            sample(false, 10, 100.0),
            sample(false, 10, 300.0),
            sample(false, 20, 400.0),
            // Not similar: another kind, or far from the size.
            sample(true, 10, 5.0),
            sample(false, 100, 1.0),
        ];
        // Rates 10, 20 and 30 s/GiB: median 20, for 10 GiB.
        assert_eq!(
            expected_duration(&history, false, 10, false),
            Some(Duration::from_secs(200))
        );
        assert_eq!(
            expected_duration(&history, false, 10, true),
            Some(Duration::from_secs(300))
        );
        assert_eq!(
            expected_duration(&history, true, 10, false),
            Some(Duration::from_secs(5))
        );
        assert_eq!(expected_duration(&history, true, 1000, false), None);
        assert_eq!(expected_duration(&[], false, 10, false), None);
    }

    #[test]
    fn an_even_count_takes_the_mean_of_the_middle_two() {
        let history = [sample(false, 1, 2.0), sample(false, 1, 4.0)];
        assert_eq!(
            expected_duration(&history, false, 1, false),
            Some(Duration::from_secs(3))
        );
    }

    #[test]
    fn a_size_of_zero_counts_as_one_gib() {
        let history = [sample(false, 1, 7.0)];
        assert_eq!(
            expected_duration(&history, false, 0, false),
            Some(Duration::from_secs(7))
        );
    }
}
