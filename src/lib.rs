//! backup-gateway: an HTTP service that makes OpenStack Cinder backups from
//! volume snapshots on behalf of tenants and follows each one as a job.
//!
//! This crate root builds the application, config -> state -> router ->
//! worker, so that `main.rs`, the tests and the demo share one way of
//! starting it. `main.rs` only parses the command line.

pub mod api;
pub mod auth;
pub mod config;
pub mod config_file;
pub mod demo;
pub mod jobs;
pub mod metrics;
pub mod openstack;
pub mod problem;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod webhooks;

use std::{
    future::Future,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use anyhow::Context;
use axum::Router;
use tokio::{net::TcpListener, task::JoinHandle};

use crate::{
    api::{AppState, HttpSettings, limits::RateLimiter},
    auth::{AuthSettings, JwksCache, JwksLocation, JwtVerifier, KeySource},
    config::Config,
    jobs::{Jobs, JobsSettings, LeaseSettings, Leases, Tenants, Worker, WorkerLimits},
    openstack::{Backoff, OpenStackClient, UpstreamSettings},
};

/// How often finished jobs and expired idempotency keys are purged.
const PURGE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

/// A built gateway: bound to its port, with its worker ready to start.
pub struct Application {
    listener: TcpListener,
    router: Router,
    jobs: Arc<Jobs>,
    worker: Worker,
    worker_alive: Arc<AtomicBool>,
    dispatcher: webhooks::delivery::Dispatcher,
    limits: server::ConnectionLimits,
    poll_interval: std::time::Duration,
    /// False when whoever built the application runs the worker's cycles.
    worker_loop: bool,
    address: SocketAddr,
}

impl Application {
    /// Binds `--listen`, then builds the application on it (see
    /// [`Application::build_on`]).
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        let listener = Self::bind(&config).await?;
        Self::build_on(config, listener).await
    }

    /// Binds the listener of `--listen`: first, so that a gateway whose
    /// port is taken stops before it touches anything.
    pub async fn bind(config: &Config) -> anyhow::Result<TcpListener> {
        TcpListener::bind(config.listen).await.map_err(|e| {
            let why = if e.kind() == std::io::ErrorKind::AddrInUse {
                "the address is in use (by another gateway or demo?): stop it, or pass another --listen".to_owned()
            } else {
                e.to_string()
            };
            anyhow::anyhow!("--listen {}: cannot bind: {why}", config.listen)
        })
    }

    /// Checks the configuration, opens (and migrates) the store and reads
    /// the clouds.yaml, to serve on `listener`. Nothing is served until
    /// [`Application::run_until_stopped`].
    pub async fn build_on(
        mut config: Config,
        listener: TcpListener,
    ) -> anyhow::Result<Application> {
        config.resolve_secret_files();
        config.validate()?;
        let store = store::connect(&store::StoreOptions {
            url: config.database_url.clone(),
            pool_size: config.database_pool_size,
        })
        .await?;
        let tenant_map = config.tenant_map();
        let clouds = load_clouds(&config)?;
        let cinder = OpenStackClient::new(
            clouds,
            UpstreamSettings {
                interface: config.interface.clone(),
                region: config.region.clone(),
                timeout: config.upstream_timeout,
                page_size: config.upstream_page_size,
                auth_backoff: Backoff {
                    base: config.keystone_retry_base,
                    max: config.keystone_retry_max,
                },
            },
        )?;
        // One name per process (a generated one differs at each call):
        // its leases and its webhook claims are known by it.
        let replica = config.replica(store.kind());
        let leases = Arc::new(Leases::new(
            store.clone(),
            LeaseSettings {
                replica: replica.clone(),
                ttl: config.lease_ttl,
            },
        ));
        let jobs = Arc::new(Jobs::new(
            store,
            Arc::new(cinder),
            Tenants::new(tenant_map),
            JobsSettings {
                submit_attempts: config.submit_attempts,
                retry_base: config.retry_base,
                retry_max: config.retry_max,
                stuck_after: config.stuck_after,
                max_wait: config.max_wait,
                max_waiters: config.max_waiters,
                submit_budget: config.submit_budget(),
                request_timeout: config.request_timeout(),
                upstream_timeout: config.upstream_timeout,
                retention: config.retention,
                idempotency_ttl: config.idempotency_ttl,
                event_retention: config.event_retention,
                max_event_streams: config.max_event_streams as usize,
            },
        ));
        let webhooks = webhooks::Webhooks::new(jobs.clone(), webhook_settings(&config)?);
        let dispatcher = webhooks::delivery::Dispatcher::new(webhooks.clone(), replica)?;
        let auth = Arc::new(JwtVerifier::new(auth_settings(&config)?));
        let worker_alive = Arc::new(AtomicBool::new(false));
        let worker = Worker::new(
            jobs.clone(),
            leases,
            WorkerLimits {
                concurrency: config.worker_concurrency as usize,
                per_tenant: config.tenant_concurrency as usize,
            },
        );
        let state = AppState {
            jobs: jobs.clone(),
            auth,
            worker_alive: worker_alive.clone(),
            worker: worker.clone(),
            limiter: Arc::new(RateLimiter::new(
                config.rate_limit,
                config.rate_burst,
                config.tenants.iter().map(|(tenant, _)| tenant.clone()),
            )),
            event_heartbeat: config.event_heartbeat,
            webhooks,
        };
        let router = api::router(
            state,
            &HttpSettings {
                request_timeout: config.request_timeout(),
                max_body_bytes: config.max_body_bytes,
                cors_origins: config.cors_origins.clone(),
                max_header_bytes: config.max_header_bytes,
            },
        );
        let address = listener.local_addr()?;
        Ok(Application {
            listener,
            router,
            worker,
            jobs,
            worker_alive,
            dispatcher,
            limits: server::ConnectionLimits {
                header_read_timeout: config.header_read_timeout,
                max_connections: config.max_connections,
                max_header_bytes: config.max_header_bytes,
                drain_timeout: config.shutdown_grace,
            },
            poll_interval: config.poll_interval,
            worker_loop: true,
            address,
        })
    }

    /// The port the API listens on (useful with port 0).
    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// The address the API listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The worker, for running a reconciliation cycle by hand (tests).
    pub fn worker(&self) -> Worker {
        self.worker.clone()
    }

    /// The job service, for running a purge by hand (tests).
    pub fn jobs(&self) -> Arc<Jobs> {
        self.jobs.clone()
    }

    /// Serves without the worker's own loop: the caller runs its cycles with
    /// [`Worker::cycle`] (tests that decide when Cinder is looked at).
    pub fn without_worker_loop(mut self) -> Self {
        self.worker_loop = false;
        self
    }

    /// Serves until SIGTERM or Ctrl-C, then finishes in-flight requests.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `stop` completes, then stops: no new connection is
    /// accepted, long polls answer at once with the job as it is, requests
    /// under way and the worker's passes under way get the grace period to
    /// end (a pass is never cut between Cinder's answer and the store
    /// write unless the grace runs out), and the tenant leases are given
    /// back. Jobs not finished stay in the store for the next start.
    pub async fn run_until(
        self,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let leases = self.worker.leases().clone();
        let (stopping, stop_worker) = tokio::sync::watch::channel(false);
        // Deliveries go on whoever drives the worker; cut at the stop
        // (an attempt under way is made again later).
        let dispatcher = tokio::spawn(self.dispatcher.run(stop_worker.clone()));
        // One grace for all that ends, counted from the signal.
        let stopped_at = Arc::new(std::sync::OnceLock::new());
        let stop = {
            let jobs = self.jobs.clone();
            let stopped_at = stopped_at.clone();
            async move {
                stop.await;
                let _ = stopped_at.set(tokio::time::Instant::now());
                tracing::info!("stopping: no new connections; long polls answer now");
                jobs.begin_shutdown();
                let _ = stopping.send(true);
            }
        };
        let (mut worker, purger) = if self.worker_loop {
            let jobs = self.jobs.clone();
            (
                spawn_worker(
                    self.worker,
                    self.poll_interval,
                    self.worker_alive.clone(),
                    stop_worker,
                ),
                tokio::spawn(async move { jobs.purge_every(PURGE_INTERVAL).await }),
            )
        } else {
            // Driven from outside: as ready as a running loop.
            self.worker_alive.store(true, Ordering::Relaxed);
            (tokio::spawn(async {}), tokio::spawn(async {}))
        };
        tracing::info!(
            address = %self.address,
            store = self.jobs.store().kind(),
            replica = leases.replica(),
            "backup-gateway listening"
        );
        let grace = self.limits.drain_timeout;
        let served = server::serve(self.listener, self.router, self.limits, stop).await;
        purger.abort();
        // Attempts under way are cut (at least once: they are made again).
        dispatcher.abort();
        let _ = dispatcher.await;
        // Its webhooks are let go at once: another replica delivers to them
        // while this one drains.
        if let Err(e) = self
            .jobs
            .store()
            .webhooks()
            .unclaim_all(leases.replica())
            .await
        {
            tracing::warn!(error = %e, "could not let go of the webhooks this replica was delivering to; their claims run out by themselves");
        }
        // The worker ends before the leases are given back: a claim cut
        // short must not take a lease after they are.
        let deadline = stopped_at
            .get()
            .copied()
            .unwrap_or_else(tokio::time::Instant::now)
            + grace;
        if tokio::time::timeout_at(deadline, &mut worker)
            .await
            .is_err()
        {
            tracing::warn!(
                ?grace,
                "the worker's passes outlasted the grace period; cutting them (the jobs are found again at the next start)"
            );
            worker.abort();
            let _ = worker.await;
        }
        self.worker_alive.store(false, Ordering::Relaxed);
        // Other replicas take this one's tenants at once, not after the
        // leases expire.
        leases.release_all().await;
        served.context("serving the API")?;
        tracing::info!("backup-gateway stopped");
        Ok(())
    }
}

/// The clouds.yaml entries of the tenant map, read from `--clouds-file`.
/// Only the mapped entries are read: an admin entry in the same file never
/// acts for a caller, and other entries may be of any kind.
fn load_clouds(
    config: &Config,
) -> anyhow::Result<std::collections::BTreeMap<String, openstack::clouds::Cloud>> {
    let clouds_file = config
        .clouds_file
        .as_deref()
        .context("--clouds-file is required")?;
    if clouds_file.is_dir() {
        anyhow::bail!(
            "--clouds-file {}: is a directory, not a clouds.yaml",
            clouds_file.display()
        );
    }
    let tenant_map = config.tenant_map();
    openstack::clouds::load_entries(clouds_file, tenant_map.values().map(String::as_str)).map_err(
        |e| {
            let whose = match e {
                openstack::clouds::CloudsError::Entry { .. } => {
                    "--tenant TENANT=CLOUD names a clouds.yaml entry the gateway cannot use"
                        .to_owned()
                }
                _ => format!("--clouds-file {}", clouds_file.display()),
            };
            anyhow::Error::new(e).context(whose)
        },
    )
}

/// `backup-gateway check-config`: everything `serve` checks before it
/// serves (settings, the key source, the clouds.yaml entries of the tenant
/// map, the store's kind), without binding, connecting or calling anyone.
/// Answers a summary of what was found.
pub fn check_config(config: &Config) -> anyhow::Result<String> {
    use secrecy::ExposeSecret;
    config.validate()?;
    auth_settings(config)?;
    let clouds = load_clouds(config)?;
    let store = store::kind_of(config.database_url.expose_secret())?;
    let tenants = config.tenant_map();
    Ok(format!(
        "configuration OK: {} tenant(s) ({}), {} clouds.yaml entr{}, store {store} ({}), listening on {}",
        tenants.len(),
        tenants.keys().cloned().collect::<Vec<_>>().join(", "),
        clouds.len(),
        if clouds.len() == 1 { "y" } else { "ies" },
        store::redact_url(config.database_url.expose_secret()),
        config.listen,
    ))
}

/// How webhooks behave, from the configuration.
fn webhook_settings(config: &Config) -> anyhow::Result<webhooks::WebhookSettings> {
    Ok(webhooks::WebhookSettings {
        allow: Arc::new(
            webhooks::targets::AllowList::parse(&config.webhook_allow)
                .map_err(|e| anyhow::anyhow!("--webhook-allow: {e}"))?,
        ),
        retry_for: config.webhook_retry_for,
        retry_base: config.webhook_retry_base,
        retry_max: config.webhook_retry_max,
        connect_timeout: config.webhook_connect_timeout,
        timeout: config.webhook_timeout,
        secret_overlap: config.webhook_secret_overlap,
        max_per_tenant: config.max_webhooks,
        concurrency: config.webhook_concurrency as usize,
        retention: config.event_retention,
    })
}

/// What the verifier of callers' tokens checks, from the configuration.
fn auth_settings(config: &Config) -> anyhow::Result<AuthSettings> {
    let keys = if let Some(secret) = &config.jwt_secret {
        KeySource::secret(secret)
    } else if !config.jwt_public_keys.is_empty() {
        KeySource::pem_files(&config.jwt_public_keys)?
    } else if let Some(url) = &config.jwt_jwks_url {
        KeySource::Jwks(Box::new(JwksCache::new(
            JwksLocation::Url(url.clone()),
            config.jwks_min_refresh,
        )?))
    } else if let Some(issuer) = &config.oidc_issuer {
        KeySource::Jwks(Box::new(JwksCache::new(
            JwksLocation::Issuer(issuer.clone()),
            config.jwks_min_refresh,
        )?))
    } else {
        anyhow::bail!("no key source for callers' tokens");
    };
    Ok(AuthSettings {
        keys,
        algorithms: config.algorithms(),
        issuer: config.issuer().map(str::to_owned),
        audience: config.jwt_audience.clone(),
        leeway: config.jwt_leeway,
        max_lifetime: config.jwt_max_lifetime,
        tenant_claim: config.tenant_claim.clone(),
        scope_claim: config.scope_claim.clone(),
        read_scope: config.read_scope.clone(),
        write_scope: config.write_scope.clone(),
    })
}

/// Runs the worker loop, keeping `alive` true while it runs.
fn spawn_worker(
    worker: Worker,
    interval: std::time::Duration,
    alive: Arc<AtomicBool>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> JoinHandle<()> {
    alive.store(true, Ordering::Relaxed);
    tokio::spawn(async move {
        /// Clears the flag however the loop ends (abort or panic).
        struct Alive(Arc<AtomicBool>);
        impl Drop for Alive {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Relaxed);
            }
        }
        let _alive = Alive(alive);
        worker.run(interval, stop).await;
    })
}

/// Completes on SIGTERM (what orchestrators send) or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown requested; finishing in-flight requests");
}
