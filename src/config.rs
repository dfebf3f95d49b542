//! Configuration of the gateway: command-line flags, each with a
//! `BACKUP_GATEWAY_*` environment variable (flags win over env).
//!
//! Values are parsed into domain types once, here, and checked at start-up
//! with messages that name the flag. Secrets are [`SecretString`]s so that
//! `Debug` never prints them.

use std::{collections::BTreeMap, net::SocketAddr, path::PathBuf, time::Duration};

use secrecy::SecretString;

/// The embedded store: a SQLite file under `./data/`.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/backup-gateway.db";

/// Everything `backup-gateway serve` can be told.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// A TOML file with any of these settings (keys: the flags' names, e.g.
    /// `max_wait = "30s"`, `tenant = ["team-a=cloud-a"]`). A flag, else its
    /// environment variable, else the file, else the default.
    #[arg(long = "config", env = "BACKUP_GATEWAY_CONFIG", value_name = "FILE")]
    pub config_file: Option<std::path::PathBuf>,

    /// Address and port to serve the API on.
    #[arg(long, env = "BACKUP_GATEWAY_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Job store: `sqlite://PATH` (one replica; the file and its folder are
    /// created if missing) or `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE`
    /// (several replicas may share it; `?sslmode=require` or `verify-full`
    /// for TLS). Default `sqlite://data/backup-gateway.db` (not shown: a
    /// value from a --config file may hold a password).
    #[arg(
        long,
        env = "BACKUP_GATEWAY_DATABASE_URL",
        default_value = DEFAULT_DATABASE_URL,
        hide_env_values = true,
        value_parser = parse_secret,
        hide_default_value = true
    )]
    pub database_url: SecretString,

    /// Most connections the job store's pool opens (PostgreSQL: plus one
    /// per replica, for change announcements).
    #[arg(long, env = "BACKUP_GATEWAY_DATABASE_POOL_SIZE", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub database_pool_size: u32,

    /// How long a replica's lease on a tenant lasts without renewal (renewed
    /// every third of it): how soon another replica takes over the tenants
    /// of one that died.
    #[arg(long, env = "BACKUP_GATEWAY_LEASE_TTL", default_value = "15s", value_parser = parse_positive_duration)]
    pub lease_ttl: Duration,

    /// This replica's name in the store's leases (default: on PostgreSQL
    /// the host name and a random suffix, new at every start; on SQLite
    /// `local`).
    #[arg(long, env = "BACKUP_GATEWAY_REPLICA_ID")]
    pub replica_id: Option<String>,

    /// Key source: the shared secret of callers' HS256/384/512 JWTs.
    #[arg(long, env = "BACKUP_GATEWAY_JWT_SECRET", hide_env_values = true, hide_default_value = true, value_parser = parse_secret)]
    pub jwt_secret: Option<SecretString>,

    /// Key source: a file holding that shared secret (a container secret,
    /// say); one trailing newline is not part of it. Instead of
    /// --jwt-secret.
    #[arg(
        long,
        env = "BACKUP_GATEWAY_JWT_SECRET_FILE",
        value_parser = read_secret_file,
        conflicts_with = "jwt_secret",
        hide_default_value = true
    )]
    pub jwt_secret_file: Option<SecretString>,

    /// Key source: a PEM public key file (RSA, EC or Ed25519) of callers'
    /// JWTs; repeat for several. A token's `kid` selects the file whose
    /// name (without extension) it is.
    #[arg(
        long = "jwt-public-key",
        env = "BACKUP_GATEWAY_JWT_PUBLIC_KEYS",
        value_delimiter = ','
    )]
    pub jwt_public_keys: Vec<PathBuf>,

    /// Key source: the URL of the identity provider's JWKS.
    #[arg(long, env = "BACKUP_GATEWAY_JWT_JWKS_URL")]
    pub jwt_jwks_url: Option<String>,

    /// Key source: an OIDC issuer URL; its discovery document
    /// (`/.well-known/openid-configuration`) names the JWKS, and its
    /// `issuer` must be this URL. Tokens' `iss` must be it too.
    #[arg(long, env = "BACKUP_GATEWAY_OIDC_ISSUER")]
    pub oidc_issuer: Option<String>,

    /// The accepted JWT algorithms, comma-separated (HS256, HS384, HS512,
    /// RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, `EdDSA`).
    /// Default: HS256 with --jwt-secret, RS256 otherwise.
    #[arg(long, env = "BACKUP_GATEWAY_JWT_ALGORITHMS", value_delimiter = ',', value_parser = parse_algorithm)]
    pub jwt_algorithms: Vec<jsonwebtoken::Algorithm>,

    /// Least time between two fetches of the JWKS (a token with an unknown
    /// `kid` asks for one).
    #[arg(long, env = "BACKUP_GATEWAY_JWKS_MIN_REFRESH", default_value = "30s", value_parser = parse_duration)]
    pub jwks_min_refresh: Duration,

    /// JWT claim that names the caller's tenant: a name or a dotted path
    /// into nested claims (`openstack.project`); its value must be a string.
    #[arg(long, env = "BACKUP_GATEWAY_TENANT_CLAIM", default_value = "tenant")]
    pub tenant_claim: String,

    /// JWT claim holding the caller's scopes: a space-separated string
    /// (`scope`) or an array (`scp`, `roles`).
    #[arg(long, env = "BACKUP_GATEWAY_SCOPE_CLAIM", default_value = "scope")]
    pub scope_claim: String,

    /// Scope every read (GET) needs.
    #[arg(
        long,
        env = "BACKUP_GATEWAY_READ_SCOPE",
        default_value = "backups:read"
    )]
    pub read_scope: String,

    /// Scope every other operation than a GET needs (create, cancel, the
    /// webhooks' create, rotate and delete).
    #[arg(
        long,
        env = "BACKUP_GATEWAY_WRITE_SCOPE",
        default_value = "backups:write"
    )]
    pub write_scope: String,

    /// Required `iss` of callers' JWTs. Required, with --jwt-audience,
    /// unless --jwt-allow-any-issuer-audience (defaults to --oidc-issuer).
    #[arg(long, env = "BACKUP_GATEWAY_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// Required `aud` of callers' JWTs. Required, with --jwt-issuer, unless
    /// --jwt-allow-any-issuer-audience.
    #[arg(long, env = "BACKUP_GATEWAY_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,

    /// Accept tokens of any issuer and audience signed by the configured
    /// keys (not advised: tokens minted for another service would be
    /// accepted here). Logged as a warning at start.
    #[arg(long, env = "BACKUP_GATEWAY_JWT_ALLOW_ANY_ISSUER_AUDIENCE")]
    pub jwt_allow_any_issuer_audience: bool,

    /// Longest lifetime (`exp - iat`) of a caller's token; unlimited when
    /// unset (then `iat` is required).
    #[arg(long, env = "BACKUP_GATEWAY_JWT_MAX_LIFETIME", value_parser = parse_duration)]
    pub jwt_max_lifetime: Option<Duration>,

    /// Clock skew allowed on `exp`, `nbf` and `iat`, e.g. `30s`.
    #[arg(long, env = "BACKUP_GATEWAY_JWT_LEEWAY", default_value = "30s", value_parser = parse_duration)]
    pub jwt_leeway: Duration,

    /// Tenant map, `TENANT=CLOUD`: a caller whose tenant claim is TENANT acts
    /// with the credentials of the clouds.yaml entry CLOUD. Repeat the flag,
    /// or separate entries with commas in the environment variable. Required.
    #[arg(long = "tenant", env = "BACKUP_GATEWAY_TENANTS", value_delimiter = ',', value_parser = parse_tenant_mapping)]
    pub tenants: Vec<(String, String)>,

    /// The clouds.yaml holding each tenant's Keystone credentials
    /// (openstacksdk's format). Required.
    #[arg(long, env = "OS_CLIENT_CONFIG_FILE")]
    pub clouds_file: Option<PathBuf>,

    /// Catalog interface of the Cinder endpoint, unless the clouds.yaml entry
    /// names one.
    #[arg(long, env = "BACKUP_GATEWAY_INTERFACE", default_value = "public")]
    pub interface: String,

    /// Catalog region of the Cinder endpoint, unless the clouds.yaml entry
    /// names one (`region_name`).
    #[arg(long, env = "BACKUP_GATEWAY_REGION")]
    pub region: Option<String>,

    /// Time limit of one call to Keystone or Cinder.
    #[arg(long, env = "BACKUP_GATEWAY_UPSTREAM_TIMEOUT", default_value = "30s", value_parser = parse_positive_duration)]
    pub upstream_timeout: Duration,

    /// Page size of the worker's backup listings in Cinder (Cinder caps it at
    /// its `osapi_max_limit`, 1000 by default).
    #[arg(long, env = "BACKUP_GATEWAY_UPSTREAM_PAGE_SIZE", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub upstream_page_size: u32,

    /// How often the worker polls Cinder for the tenants' running backups.
    #[arg(long, env = "BACKUP_GATEWAY_POLL_INTERVAL", default_value = "5s", value_parser = parse_positive_duration)]
    pub poll_interval: Duration,

    /// Submissions to Cinder tried per job before it fails.
    #[arg(long, env = "BACKUP_GATEWAY_SUBMIT_ATTEMPTS", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    pub submit_attempts: u32,

    /// First retry delay after a transient failure; it doubles per attempt
    /// (with jitter) up to `--retry-max`.
    #[arg(long, env = "BACKUP_GATEWAY_RETRY_BASE", default_value = "2s", value_parser = parse_duration)]
    pub retry_base: Duration,

    /// Longest retry delay.
    #[arg(long, env = "BACKUP_GATEWAY_RETRY_MAX", default_value = "5m", value_parser = parse_duration)]
    pub retry_max: Duration,

    /// A backup still `creating` (or in a status the gateway does not
    /// follow) this long after Cinder accepted it fails the job as stuck
    /// (the backup id is kept for the operator); so does a job whose
    /// outcome cannot be learnt this long.
    #[arg(long, env = "BACKUP_GATEWAY_STUCK_AFTER", default_value = "24h", value_parser = parse_duration)]
    pub stuck_after: Duration,

    /// First delay before Keystone is asked again for a tenant whose token
    /// request failed; it doubles with each failure in a row up to
    /// `--keystone-retry-max`. Meanwhile that tenant's requests get the
    /// remembered failure at once.
    #[arg(long, env = "BACKUP_GATEWAY_KEYSTONE_RETRY_BASE", default_value = "1s", value_parser = parse_duration)]
    pub keystone_retry_base: Duration,

    /// Longest delay before Keystone is asked again after failures.
    #[arg(long, env = "BACKUP_GATEWAY_KEYSTONE_RETRY_MAX", default_value = "5m", value_parser = parse_duration)]
    pub keystone_retry_max: Duration,

    /// Most upstream operations the worker runs at once, all tenants
    /// together.
    #[arg(long, env = "BACKUP_GATEWAY_WORKER_CONCURRENCY", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub worker_concurrency: u32,

    /// Most submissions of one tenant the worker runs at once.
    #[arg(long, env = "BACKUP_GATEWAY_TENANT_CONCURRENCY", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub tenant_concurrency: u32,

    /// Finished jobs (succeeded, failed, cancelled) are purged this long
    /// after they finished.
    #[arg(long, env = "BACKUP_GATEWAY_RETENTION", default_value = "30d", value_parser = parse_duration)]
    pub retention: Duration,

    /// An `Idempotency-Key` is kept this long after its first use: at least
    /// the request time limit (--max-wait + 2 x --upstream-timeout), at
    /// most --retention; 24 hours or more is advised.
    #[arg(long, env = "BACKUP_GATEWAY_IDEMPOTENCY_TTL", default_value = "24h", value_parser = parse_duration)]
    pub idempotency_ttl: Duration,

    /// Job events (`GET /events`) are kept this long after they happened; a
    /// client away for longer misses what was purged.
    #[arg(long, env = "BACKUP_GATEWAY_EVENT_RETENTION", default_value = "7d", value_parser = parse_duration)]
    pub event_retention: Duration,

    /// Most event streams (`GET /events`) one tenant may have open at once
    /// on this replica; past it, `429 too-many-event-streams`.
    #[arg(long, env = "BACKUP_GATEWAY_MAX_EVENT_STREAMS", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub max_event_streams: u32,

    /// Time between two heartbeats (an SSE comment) on an idle event
    /// stream, so that proxies keep it open, e.g. `15s`.
    #[arg(long, env = "BACKUP_GATEWAY_EVENT_HEARTBEAT", default_value = "15s", value_parser = parse_positive_duration)]
    pub event_heartbeat: Duration,

    /// Where webhooks and callbacks may be delivered: a host name
    /// (`hooks.example.com`), every name below one (`*.example.com`), an
    /// address or an address block (`10.20.0.0/16`, `fd00::/8`); repeat the
    /// flag or separate with commas. A URL whose host is not listed is
    /// allowed only if every address it resolves to is in a listed block,
    /// and deliveries connect only to such addresses. None by default: no
    /// webhook or callback is accepted.
    #[arg(
        long = "webhook-allow",
        env = "BACKUP_GATEWAY_WEBHOOK_ALLOW",
        value_delimiter = ','
    )]
    pub webhook_allow: Vec<String>,

    /// How long a webhook delivery is retried before it is `failed`,
    /// counted from when its event happened.
    #[arg(long, env = "BACKUP_GATEWAY_WEBHOOK_RETRY_FOR", default_value = "24h", value_parser = parse_positive_duration)]
    pub webhook_retry_for: Duration,

    /// Pause after a webhook delivery's first failed attempt; it doubles
    /// after each (with jitter), up to `--webhook-retry-max`.
    #[arg(long, env = "BACKUP_GATEWAY_WEBHOOK_RETRY_BASE", default_value = "5s", value_parser = parse_positive_duration)]
    pub webhook_retry_base: Duration,

    /// Longest pause between two attempts of a webhook delivery.
    #[arg(long, env = "BACKUP_GATEWAY_WEBHOOK_RETRY_MAX", default_value = "1h", value_parser = parse_positive_duration)]
    pub webhook_retry_max: Duration,

    /// Longest time to connect to a webhook receiver.
    #[arg(long, env = "BACKUP_GATEWAY_WEBHOOK_CONNECT_TIMEOUT", default_value = "5s", value_parser = parse_positive_duration)]
    pub webhook_connect_timeout: Duration,

    /// Longest time one webhook attempt may take, from connecting to the
    /// receiver's answer.
    #[arg(long, env = "BACKUP_GATEWAY_WEBHOOK_TIMEOUT", default_value = "15s", value_parser = parse_positive_duration)]
    pub webhook_timeout: Duration,

    /// After a webhook's secret is rotated, how long deliveries are still
    /// signed with the old one too.
    #[arg(long, env = "BACKUP_GATEWAY_WEBHOOK_SECRET_OVERLAP", default_value = "24h", value_parser = parse_duration)]
    pub webhook_secret_overlap: Duration,

    /// Most webhook subscriptions (`POST /webhooks`) one tenant may have;
    /// past it, `409 too-many-webhooks`. A create's `callback_url` does not
    /// count.
    #[arg(long, env = "BACKUP_GATEWAY_MAX_WEBHOOKS", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub max_webhooks: u32,

    /// Most webhook attempts under way at once on this replica.
    #[arg(long, env = "BACKUP_GATEWAY_WEBHOOK_CONCURRENCY", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub webhook_concurrency: u32,

    /// Most long polls (`?wait=`) waiting at once; past it a long poll
    /// answers the job at once.
    #[arg(long, env = "BACKUP_GATEWAY_MAX_WAITERS", default_value_t = 1024)]
    pub max_waiters: usize,

    /// On SIGTERM or Ctrl-C: how long requests under way and the worker's
    /// passes under way may take to end before they are cut (keep it below
    /// the orchestrator's own grace, 30 s on Kubernetes).
    #[arg(long, env = "BACKUP_GATEWAY_SHUTDOWN_GRACE", default_value = "20s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,

    /// Longest `?wait=` a caller may long-poll a job for.
    #[arg(long, env = "BACKUP_GATEWAY_MAX_WAIT", default_value = "60s", value_parser = parse_duration)]
    pub max_wait: Duration,

    /// Time a client has to send a request's headers; a kept-alive
    /// connection idle that long is closed too.
    #[arg(long, env = "BACKUP_GATEWAY_HEADER_READ_TIMEOUT", default_value = "15s", value_parser = parse_positive_duration)]
    pub header_read_timeout: Duration,

    /// Most client connections open at once; new ones past it are closed.
    #[arg(long, env = "BACKUP_GATEWAY_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,

    /// Largest request head (request line and headers), in bytes.
    #[arg(long, env = "BACKUP_GATEWAY_MAX_HEADER_BYTES", default_value_t = 32 * 1024)]
    pub max_header_bytes: usize,

    /// Requests per second each tenant may make (a token bucket); past it,
    /// `429` with `Retry-After`. 0 turns the limit off.
    #[arg(long, env = "BACKUP_GATEWAY_RATE_LIMIT", default_value_t = 50)]
    pub rate_limit: u32,

    /// Requests a tenant may make at once above its rate (the bucket's size).
    #[arg(long, env = "BACKUP_GATEWAY_RATE_BURST", default_value_t = 100)]
    pub rate_burst: u32,

    /// An origin (`https://portal.example.com`) whose browser pages may
    /// call the API (CORS); repeat the flag. None by default.
    #[arg(
        long = "cors-origin",
        env = "BACKUP_GATEWAY_CORS_ORIGINS",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<String>,

    /// Largest request body accepted, in bytes.
    #[arg(long, env = "BACKUP_GATEWAY_MAX_BODY_BYTES", default_value_t = 64 * 1024)]
    pub max_body_bytes: usize,

    /// Log format: `compact` or `json`.
    #[arg(long, env = "BACKUP_GATEWAY_LOG_FORMAT", default_value = "compact")]
    pub log_format: crate::telemetry::LogFormat,
}

impl Config {
    /// The required `iss`: --jwt-issuer, or the OIDC issuer.
    pub fn issuer(&self) -> Option<&str> {
        self.jwt_issuer.as_deref().or(self.oidc_issuer.as_deref())
    }

    /// The accepted algorithms: the configured list, or the key source's
    /// usual one.
    pub fn algorithms(&self) -> Vec<jsonwebtoken::Algorithm> {
        if !self.jwt_algorithms.is_empty() {
            return self.jwt_algorithms.clone();
        }
        if self.jwt_secret.is_some() {
            vec![jsonwebtoken::Algorithm::HS256]
        } else {
            vec![jsonwebtoken::Algorithm::RS256]
        }
    }

    /// The tenant map as a lookup table.
    pub fn tenant_map(&self) -> BTreeMap<String, String> {
        self.tenants.iter().cloned().collect()
    }

    /// The request time limit: it must outlast the longest `?wait`, and an
    /// upstream call or two on top of it.
    pub fn request_timeout(&self) -> Duration {
        self.max_wait + self.upstream_timeout * 2
    }

    /// How long a create waits for Cinder before answering the recorded job
    /// `queued`: the request time limit less a margin for the answer itself.
    pub fn submit_budget(&self) -> Duration {
        self.request_timeout()
            .saturating_sub(Duration::from_secs(2))
            .max(Duration::from_secs(1))
    }

    /// Takes the secrets given as files as if they were given directly.
    /// Idempotent.
    pub fn resolve_secret_files(&mut self) {
        if let Some(secret) = self.jwt_secret_file.take() {
            self.jwt_secret = Some(secret);
        }
    }

    /// Checks what flags cannot check one by one. The message names the flag.
    pub fn validate(&self) -> anyhow::Result<()> {
        let sources = [
            self.jwt_secret.is_some(),
            !self.jwt_public_keys.is_empty(),
            self.jwt_jwks_url.is_some(),
            self.oidc_issuer.is_some(),
        ]
        .into_iter()
        .filter(|set| *set)
        .count();
        if sources != 1 {
            anyhow::bail!(
                "give exactly one key source for callers' tokens: --jwt-secret, --jwt-public-key, --jwt-jwks-url or --oidc-issuer ({sources} given)"
            );
        }
        crate::webhooks::targets::AllowList::parse(&self.webhook_allow)
            .map_err(|e| anyhow::anyhow!("--webhook-allow: {e}"))?;
        let symmetric = self.jwt_secret.is_some();
        for alg in &self.jwt_algorithms {
            let hmac = matches!(alg.family(), jsonwebtoken::AlgorithmFamily::Hmac);
            if hmac != symmetric {
                anyhow::bail!(
                    "--jwt-algorithms: {alg:?} does not fit the key source ({})",
                    if symmetric {
                        "a secret takes HS256, HS384 or HS512"
                    } else {
                        "public keys take RS, PS, ES or EdDSA algorithms"
                    }
                );
            }
        }
        for (flag, url) in [
            ("--jwt-jwks-url", &self.jwt_jwks_url),
            ("--oidc-issuer", &self.oidc_issuer),
        ] {
            if let Some(url) = url {
                check_key_url(flag, url)?;
            }
        }
        if let (Some(oidc), Some(issuer)) = (&self.oidc_issuer, &self.jwt_issuer)
            && oidc != issuer
        {
            anyhow::bail!(
                "--jwt-issuer `{issuer}` differs from --oidc-issuer `{oidc}`: tokens of an OIDC issuer carry its URL as `iss`; leave --jwt-issuer out"
            );
        }
        for origin in &self.cors_origins {
            check_origin(origin)?;
        }
        for (flag, scope) in [
            ("--read-scope", &self.read_scope),
            ("--write-scope", &self.write_scope),
        ] {
            if scope.is_empty()
                || !scope
                    .chars()
                    .all(|c| c.is_ascii_graphic() && c != '"' && c != '\\')
            {
                anyhow::bail!(
                    "{flag} `{scope}`: a scope is one word of visible characters (no spaces or quotes)"
                );
            }
        }
        if self.issuer().is_none() || self.jwt_audience.is_none() {
            if !self.jwt_allow_any_issuer_audience {
                anyhow::bail!(
                    "--jwt-issuer and --jwt-audience are required: without them a token minted for another service would be accepted (give --jwt-allow-any-issuer-audience to accept that)"
                );
            }
            tracing::warn!(
                "--jwt-allow-any-issuer-audience: tokens of any issuer and audience signed by the configured keys are accepted"
            );
        }
        if self.tenants.is_empty() {
            anyhow::bail!(
                "--tenant TENANT=CLOUD (BACKUP_GATEWAY_TENANTS) is required at least once: no caller could act otherwise"
            );
        }
        if self.clouds_file.is_none() {
            anyhow::bail!(
                "--clouds-file (OS_CLIENT_CONFIG_FILE) is required: it holds the tenants' Keystone credentials"
            );
        }
        if self.retry_base > self.retry_max {
            anyhow::bail!("--retry-base must not exceed --retry-max");
        }
        if self.keystone_retry_base > self.keystone_retry_max {
            anyhow::bail!("--keystone-retry-base must not exceed --keystone-retry-max");
        }
        if self.idempotency_ttl < self.request_timeout() {
            anyhow::bail!(
                "--idempotency-ttl must be at least the request time limit (--max-wait + 2 x --upstream-timeout = {}s): a key must outlive the request that holds it",
                self.request_timeout().as_secs()
            );
        }
        if self.idempotency_ttl < Duration::from_secs(24 * 3600) {
            tracing::warn!(
                ttl_secs = self.idempotency_ttl.as_secs(),
                "--idempotency-ttl is below 24 hours: callers retrying later than that may make a second backup"
            );
        }
        if self.retention < self.idempotency_ttl {
            anyhow::bail!(
                "--retention must be at least --idempotency-ttl: a key must not outlive the job it answers"
            );
        }
        if self.lease_ttl < Duration::from_secs(1) {
            anyhow::bail!("--lease-ttl must be at least 1s: leases are renewed every third of it");
        }
        if let Some(id) = &self.replica_id
            && (id.is_empty() || id.len() > 200 || id.chars().any(char::is_control))
        {
            anyhow::bail!("--replica-id must be 1 to 200 characters with no control characters");
        }
        Ok(())
    }

    /// This replica's name in the store's leases: `--replica-id`; else, on
    /// a SQLite store (one process), `local`, so that a restarted process
    /// takes its leases back at once; else the host name with a random
    /// suffix (a restarted replica is a new holder, so it never mistakes a
    /// lease of its earlier life, or of a replica on the same host, for its
    /// own).
    pub fn replica(&self, store_kind: &str) -> String {
        if let Some(id) = &self.replica_id {
            return id.clone();
        }
        if store_kind == "sqlite" {
            return "local".to_owned();
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "backup-gateway".to_owned());
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        format!("{host}-{}", &suffix[..8])
    }
}

/// Reads a secret from the file at `path` (without a trailing newline).
fn read_secret_file(path: &str) -> Result<SecretString, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let secret = text
        .strip_suffix('\n')
        .map(|s| s.strip_suffix('\r').unwrap_or(s))
        .unwrap_or(&text);
    parse_secret(secret).map_err(|e| format!("the secret in {path} {e}"))
}

fn parse_secret(s: &str) -> Result<SecretString, String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    Ok(SecretString::from(s.to_owned()))
}

/// Keys must come over https: anyone on the way to the identity provider
/// could otherwise publish keys of their own. Loopback addresses are exempt
/// (a provider on the same host).
fn check_key_url(flag: &str, url: &str) -> anyhow::Result<()> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| anyhow::anyhow!("{flag} `{url}` is not a URL: {e}"))?;
    let host = parsed
        .host_str()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        scheme => anyhow::bail!(
            "{flag} `{url}`: keys must come over https (`{scheme}` is only accepted for a loopback address)"
        ),
    }
}

/// An origin as browsers send it: `scheme://host[:port]`, lowercase, no
/// path; `*` is refused (a credentialed API is not for every site).
fn check_origin(origin: &str) -> anyhow::Result<()> {
    let well_formed = reqwest::Url::parse(origin).is_ok_and(|url| {
        matches!(url.scheme(), "http" | "https")
            && url.host_str().is_some()
            && url.path() == "/"
            && url.query().is_none()
            && !origin.ends_with('/')
    }) && origin == origin.to_ascii_lowercase();
    if !well_formed {
        anyhow::bail!(
            "--cors-origin `{origin}` is not an origin such as https://portal.example.com (lowercase, no path, no `*`)"
        );
    }
    Ok(())
}

fn parse_algorithm(s: &str) -> Result<jsonwebtoken::Algorithm, String> {
    s.trim().parse().map_err(|_| {
        format!("`{s}` is not a JWT algorithm (HS256, RS256, PS256, ES256, EdDSA, ...)")
    })
}

fn parse_tenant_mapping(s: &str) -> Result<(String, String), String> {
    let (tenant, cloud) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not TENANT=CLOUD"))?;
    let (tenant, cloud) = (tenant.trim(), cloud.trim());
    if tenant.is_empty() || cloud.is_empty() {
        return Err(format!("`{s}` is not TENANT=CLOUD"));
    }
    Ok((tenant.to_owned(), cloud.to_owned()))
}

/// [`parse_duration`], more than zero: a time the gateway counts by (a
/// timer of zero would stop it).
pub fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        Duration::ZERO => Err(format!("`{s}`: must be more than 0")),
        d => Ok(d),
    }
}

/// Parses `250ms`, `30s`, `5m`, `2h`, `1d` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{s}` is not a duration such as 500ms, 30s, 5m, 2h"))?;
    let seconds_per_unit = match unit {
        "ms" => return Ok(Duration::from_millis(n)),
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "`{s}`: unknown unit `{unit}` (use ms, s, m, h or d)"
            ));
        }
    };
    n.checked_mul(seconds_per_unit)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("`{s}` is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units_and_refuse_nonsense() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert!(parse_duration("5 minutes").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("99999999999999999d").is_err());
    }

    #[test]
    fn tenant_mappings_need_both_sides() {
        assert_eq!(
            parse_tenant_mapping("acme=tenant-a"),
            Ok(("acme".into(), "tenant-a".into()))
        );
        assert!(parse_tenant_mapping("acme").is_err());
        assert!(parse_tenant_mapping("=tenant-a").is_err());
        assert!(parse_tenant_mapping("acme=").is_err());
    }
}
