//! A closed-loop load generator: N callers, each sending its next request
//! as soon as the previous one is answered, for a time or a count. Every
//! answer is checked by the request function; the latencies are kept.

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

/// What a run measured.
pub struct Run {
    pub requests: usize,
    pub elapsed: Duration,
    /// Every request's latency, sorted.
    pub latencies: Vec<Duration>,
}

impl Run {
    /// Requests per second.
    pub fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    /// The `q` quantile (0..=1) of the latencies.
    pub fn quantile(&self, q: f64) -> Duration {
        quantile(&self.latencies, q)
    }
}

/// The `q` quantile of sorted `values` (nearest rank).
pub fn quantile(values: &[Duration], q: f64) -> Duration {
    if values.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    values[rank - 1]
}

/// How long or how much a run lasts.
#[derive(Clone, Copy)]
pub enum Bound {
    For(Duration),
    Count(usize),
}

/// Runs `callers` closed loops of `request(i)` (`i` counts up across all
/// callers) until `bound`; the first failed request ends the run with its
/// error.
pub async fn closed_loop<F, Fut>(callers: usize, bound: Bound, request: F) -> anyhow::Result<Run>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send,
{
    let request = Arc::new(request);
    let counter = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let deadline = match bound {
        Bound::For(d) => Some(started + d),
        Bound::Count(_) => None,
    };
    let limit = match bound {
        Bound::Count(n) => n,
        Bound::For(_) => usize::MAX,
    };
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..callers.max(1) {
        let request = request.clone();
        let counter = counter.clone();
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            loop {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                let i = counter.fetch_add(1, Ordering::Relaxed);
                if i >= limit {
                    break;
                }
                let sent = Instant::now();
                request(i).await?;
                latencies.push(sent.elapsed());
            }
            anyhow::Ok(latencies)
        });
    }
    let mut latencies = Vec::new();
    while let Some(done) = tasks.join_next().await {
        latencies.extend(done??);
    }
    let elapsed = started.elapsed();
    latencies.sort();
    Ok(Run {
        requests: latencies.len(),
        elapsed,
        latencies,
    })
}
