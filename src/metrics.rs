//! Prometheus metrics of the process, served at `GET /metrics`.
//!
//! One registry for the process (like its one log subscriber): the HTTP
//! layer, the OpenStack client and the worker record into [`metrics()`]
//! where things happen, without a handle passed through every layer. What
//! is better read than counted (jobs by state, across replicas; long polls
//! waiting) is read when Prometheus scrapes.
//!
//! Labels are bounded: routes are templates (`/jobs/{job_id}`), never raw
//! paths; tenants are clouds.yaml entries of the tenant map; upstream
//! statuses are classes (`2xx`, `4xx`, `5xx`, `error`).

use std::sync::{LazyLock, atomic::AtomicU64};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
        info::Info,
    },
    registry::Registry,
};

/// An HTTP answer: route template, method, status.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// The matched route's template (`unmatched` for none).
    pub route: String,
    /// The request's method.
    pub method: String,
    /// The answer's status code.
    pub status: u16,
}

/// An upstream call: service, operation, status class.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamLabels {
    /// `keystone` or `cinder`.
    pub service: &'static str,
    /// What was asked (`token_issue`, `list_backups`, ...).
    pub operation: &'static str,
    /// `2xx`, `4xx`, `5xx`, or `error` when no answer came.
    pub status_class: &'static str,
}

/// A tenant: its clouds.yaml entry.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TenantLabels {
    /// The clouds.yaml entry acting for the tenant.
    pub tenant: String,
}

/// A token-cache event of a tenant.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    /// The clouds.yaml entry acting for the tenant.
    pub tenant: String,
    /// `hit` (a cached token served), `miss` (none cached: Keystone asked),
    /// `refresh` (a cached token near its end replaced), `failure`
    /// (Keystone did not give one), `backoff` (answered the last failure
    /// again without asking Keystone, while its backoff lasts).
    pub outcome: &'static str,
}

/// What a webhook attempt came to.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `delivered` (2xx), `failed` (to be retried) or `gave_up` (retries
    /// are over).
    pub outcome: &'static str,
}

/// A job state.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    /// `queued`, `running`, `succeeded`, `failed` or `cancelled`.
    pub state: &'static str,
}

/// The build, as `backup_gateway_build_info`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

/// A histogram family whose histograms are made by a plain function.
type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// A gauge holding a float (seconds, timestamps).
type FloatGauge = Gauge<f64, AtomicU64>;

/// Every metric of the process.
pub struct Metrics {
    registry: Registry,
    /// HTTP answers by route template, method and status.
    pub http_requests: Family<HttpLabels, Counter>,
    /// Their latency.
    pub http_duration: Histograms<HttpLabels>,
    /// Keystone and Cinder calls by operation and status class.
    pub upstream_calls: Family<UpstreamLabels, Counter>,
    /// Their latency.
    pub upstream_duration: Histograms<UpstreamLabels>,
    /// Jobs by state, in the store (all replicas'), read at each scrape.
    pub jobs: Family<StateLabels, Gauge>,
    /// From a job's creation to its terminal state, by that state.
    pub job_duration: Histograms<StateLabels>,
    /// Token cache events by tenant.
    pub tokens: Family<TokenLabels, Counter>,
    /// How long a worker cycle (scan, leases, passes started) took.
    pub worker_cycle: Histogram,
    /// How long each tenant's pass took (its Cinder calls and the writes
    /// of what it concluded), by tenant.
    pub worker_pass: Histograms<TenantLabels>,
    /// How late the last worker cycle started after its scheduled time.
    pub worker_lag: FloatGauge,
    /// When each tenant's creating backups were last listed successfully
    /// (Unix time).
    pub tenant_last_listing: Family<TenantLabels, FloatGauge>,
    /// Long polls waiting now, read at each scrape.
    pub waiters: Gauge,
    /// Event streams open now, read at each scrape.
    pub event_streams: Gauge,
    /// Webhook attempts by outcome.
    pub webhook_attempts: Family<OutcomeLabels, Counter>,
}

/// Latency buckets: 1 ms to about 65 s.
fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

/// Pass duration buckets: 10 ms to about 11 min (a pass may wait out
/// several upstream time limits).
fn pass_duration() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 2.0, 17))
}

/// Job duration buckets: 1 s to about 36 h.
fn job_duration() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 18))
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("backup_gateway");
        let http_requests = Family::default();
        let http_duration: Histograms<HttpLabels> = Family::new_with_constructor(latency);
        let upstream_calls = Family::default();
        let upstream_duration: Histograms<UpstreamLabels> = Family::new_with_constructor(latency);
        let jobs = Family::default();
        let job_duration: Histograms<StateLabels> = Family::new_with_constructor(job_duration);
        let tokens = Family::default();
        let worker_cycle = latency();
        let worker_pass: Histograms<TenantLabels> = Family::new_with_constructor(pass_duration);
        let worker_lag = FloatGauge::default();
        let tenant_last_listing = Family::default();
        let waiters = Gauge::default();
        let event_streams = Gauge::default();
        let webhook_attempts = Family::default();
        registry.register(
            "http_requests",
            "HTTP answers by route template, method and status",
            Family::<HttpLabels, Counter>::clone(&http_requests),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP answer latency by route template, method and status",
            http_duration.clone(),
        );
        registry.register(
            "upstream_requests",
            "Keystone and Cinder calls by service, operation and status class",
            Family::<UpstreamLabels, Counter>::clone(&upstream_calls),
        );
        registry.register(
            "upstream_request_duration_seconds",
            "Keystone and Cinder call latency by service, operation and status class",
            upstream_duration.clone(),
        );
        registry.register(
            "jobs",
            "Jobs in the store by state (every replica's)",
            Family::<StateLabels, Gauge>::clone(&jobs),
        );
        registry.register(
            "job_duration_seconds",
            "From a job's creation to its terminal state, by that state",
            job_duration.clone(),
        );
        registry.register(
            "token_cache_events",
            "Keystone token cache events (hit, miss, refresh, failure) by tenant",
            Family::<TokenLabels, Counter>::clone(&tokens),
        );
        registry.register(
            "worker_cycle_duration_seconds",
            "How long a worker cycle took (scan, leases, passes started)",
            worker_cycle.clone(),
        );
        registry.register(
            "worker_pass_duration_seconds",
            "How long a tenant's pass took (its Cinder calls and the writes of what it concluded), by tenant",
            worker_pass.clone(),
        );
        registry.register(
            "worker_lag_seconds",
            "How late the last worker cycle started after its scheduled time",
            worker_lag.clone(),
        );
        registry.register(
            "tenant_last_listing_timestamp_seconds",
            "When each tenant's creating backups were last listed successfully (Unix time)",
            Family::<TenantLabels, FloatGauge>::clone(&tenant_last_listing),
        );
        registry.register(
            "long_poll_waiters",
            "Long polls (?wait=) waiting now",
            waiters.clone(),
        );
        registry.register(
            "event_streams",
            "Event streams (GET /events) open now",
            event_streams.clone(),
        );
        registry.register(
            "webhook_attempts",
            "Webhook delivery attempts by outcome (delivered, failed and to be retried, gave_up)",
            Family::<OutcomeLabels, Counter>::clone(&webhook_attempts),
        );
        registry.register(
            "build",
            "The gateway's version",
            Info::new(BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            }),
        );
        Metrics {
            registry,
            http_requests,
            http_duration,
            upstream_calls,
            upstream_duration,
            jobs,
            job_duration,
            tokens,
            worker_cycle,
            worker_pass,
            worker_lag,
            tenant_last_listing,
            waiters,
            event_streams,
            webhook_attempts,
        }
    }

    /// The registry in Prometheus' text format.
    pub fn render(&self) -> String {
        let mut text = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::error!(error = %e, "could not render the metrics");
        }
        text
    }

    /// Records one upstream call of `operation` that answered `status`
    /// (`None`: no answer) after `seconds`.
    pub fn upstream_call(
        &self,
        service: &'static str,
        operation: &'static str,
        status: Option<u16>,
        seconds: f64,
    ) {
        let status_class = match status {
            Some(200..=299) => "2xx",
            Some(300..=399) => "3xx",
            Some(400..=499) => "4xx",
            Some(_) => "5xx",
            None => "error",
        };
        let labels = UpstreamLabels {
            service,
            operation,
            status_class,
        };
        self.upstream_calls.get_or_create(&labels).inc();
        self.upstream_duration
            .get_or_create(&labels)
            .observe(seconds);
    }

    /// Records the upstream call of `operation` started at `started`, from
    /// what sending it gave.
    pub fn upstream_sent<E>(
        &self,
        service: &'static str,
        operation: &'static str,
        sent: &Result<reqwest::Response, E>,
        started: std::time::Instant,
    ) {
        self.upstream_call(
            service,
            operation,
            sent.as_ref().ok().map(|r| r.status().as_u16()),
            started.elapsed().as_secs_f64(),
        );
    }

    /// Records a token cache event of the tenant acting through `cloud`.
    pub fn token_event(&self, cloud: &str, outcome: &'static str) {
        self.tokens
            .get_or_create(&TokenLabels {
                tenant: cloud.to_owned(),
                outcome,
            })
            .inc();
    }
}

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

/// Seconds since the Unix epoch, for timestamp gauges.
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
