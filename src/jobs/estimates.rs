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
//! tenant's latest succeeded jobs) the first time it is needed and again
//! after [`RELOAD`], so that backups finished by other replicas count, and
//! added to at once as this process sees jobs succeed.

use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};

use super::model::{Job, JobState, later};
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

/// A tenant's recent backups.
#[derive(Debug)]
struct History {
    read_at: Instant,
    samples: VecDeque<Sample>,
}

/// The estimates of every tenant.
#[derive(Debug, Default)]
pub struct Estimates {
    tenants: Mutex<HashMap<String, History>>,
}

impl Estimates {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, History>> {
        // A map of plain values: consistent under every panic point.
        self.tenants.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a job that succeeded to its tenant's history (when it is read
    /// already; else the next read has it).
    pub fn record(&self, job: &Job) {
        let Some(sample) = Sample::of(job) else {
            return;
        };
        if let Some(history) = self.lock().get_mut(&job.project_id) {
            history.samples.push_front(sample);
            history.samples.truncate(KEEP);
        }
    }

    /// When the running `job` is expected to complete: its start plus the
    /// expected duration (`slowest`: from the slowest similar backup).
    /// `None` without a size, a start or a similar earlier backup.
    pub async fn completion_of(
        &self,
        store: &dyn JobStore,
        job: &Job,
        slowest: bool,
    ) -> Option<DateTime<Utc>> {
        let size_gib = job.size_gib?;
        let started_at = job.started_at?;
        let samples = self.samples(store, &job.project_id).await;
        let incremental = job.options.incremental.unwrap_or(false);
        let took = expected_duration(&samples, incremental, size_gib, slowest)?;
        // Whole milliseconds, as the store keeps times (rounded: a rate
        // times a size comes back a hair under the duration it came from).
        let took = Duration::from_millis((took.as_secs_f64() * 1000.0).round() as u64);
        Some(later(started_at, took))
    }

    /// The tenant's history, read from the store when it is not held or
    /// is old. A store that fails leaves the history as it was.
    async fn samples(&self, store: &dyn JobStore, project_id: &str) -> Vec<Sample> {
        let fresh = |history: &History| history.read_at.elapsed() < RELOAD;
        if let Some(history) = self.lock().get(project_id).filter(|h| fresh(h)) {
            return history.samples.iter().copied().collect();
        }
        let filter = JobFilter {
            state: Some(JobState::Succeeded),
            ..Default::default()
        };
        match store.list(project_id, &filter, KEEP as u32, None).await {
            Ok(jobs) => {
                let samples: VecDeque<Sample> = jobs.iter().filter_map(Sample::of).collect();
                let copy = samples.iter().copied().collect();
                self.lock().insert(
                    project_id.to_owned(),
                    History {
                        read_at: Instant::now(),
                        samples,
                    },
                );
                copy
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not read the tenant's earlier backups; no completion estimate");
                self.lock()
                    .get(project_id)
                    .map(|h| h.samples.iter().copied().collect())
                    .unwrap_or_default()
            }
        }
    }
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
