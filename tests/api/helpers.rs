//! Starting a gateway for a test: an `openstack-sim` on real TCP, a fresh
//! SQLite file, a clouds.yaml written as a user would write it, and the
//! gateway itself on port 0. Typed request helpers keep tests short.

use std::{
    sync::{Arc, LazyLock, Mutex},
    time::Duration,
};

use backup_gateway::{
    Application,
    auth::sign_hs256,
    config::Config,
    jobs::{Jobs, Worker},
};
use clap::Parser;
use openstack_sim::{
    AppCredentialSeed, Quotas, RunningSim, Seed, Sim, SimConfig, SnapshotSeed, TenantSeed,
    VolumeSeed,
};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use tokio::{sync::oneshot, task::JoinHandle};
use tracing_subscriber::EnvFilter;

/// Keystone project of the seeded `tenant-a`.
pub const PROJECT_A: &str = "5f1d4c3b2a1948e7b6c5d4e3f2a1b0c9";
/// Keystone project of the seeded `tenant-b`.
pub const PROJECT_B: &str = "9e8d7c6b5a4f4e3d8c2b1a0f9e8d7c6b";
/// Keystone project of the seeded `tenant-r` (reader-only credential).
pub const PROJECT_R: &str = "7c7c7c7c7c7c4c7c8c7c7c7c7c7c7c7c";

/// The callers' HS256 secret in tests.
pub const JWT_SECRET: &str = "test-jwt-secret";
/// `iss` of the tests' caller tokens.
pub const JWT_ISSUER: &str = "test-issuer";
/// `aud` of the tests' caller tokens.
pub const JWT_AUDIENCE: &str = "backup-gateway";

/// The claims of a test caller of `tenant` holding both scopes, valid for
/// an hour.
pub fn caller_claims(tenant: &str) -> Value {
    json!({
        "tenant": tenant,
        "sub": "test",
        "iss": JWT_ISSUER,
        "aud": JWT_AUDIENCE,
        "scope": "backups:read backups:write",
        "exp": chrono::Utc::now().timestamp() + 3600,
    })
}

/// The secret of the `tenant-x` cloud entry, which Keystone refuses: it
/// must never appear in an answer.
pub const WRONG_SECRET: &str = "wrong-secret-do-not-leak";

/// Everything the gateway logged in this test process (nextest runs each
/// test in its own process), at debug level, so that tests can check what a
/// log would reveal. Printed too with `TEST_LOG=1`.
static LOGS: LazyLock<Arc<Mutex<Vec<u8>>>> = LazyLock::new(|| {
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let writer = LogWriter(buffer.clone());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new("debug"))
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .try_init();
    buffer
});

/// Appends log lines to [`LOGS`] (and to stderr with `TEST_LOG=1`).
#[derive(Clone)]
struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if std::env::var_os("TEST_LOG").is_some() {
            std::io::stderr().write_all(bytes)?;
        }
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// What the gateway has logged so far in this test.
pub fn logs() -> String {
    String::from_utf8_lossy(&LOGS.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
}

/// The JWT flags of the tests' callers (secret, issuer, audience).
pub fn test_jwt_flags() -> Vec<&'static str> {
    jwt_defaults::<&str>(&[])
}

/// Parses the gateway's own flags, so tests get exactly the defaults users get.
#[derive(Parser)]
struct Flags {
    #[command(flatten)]
    config: Config,
}

/// The JWT flags every test gateway starts with, each left out when the
/// test passes a flag that replaces it: another key source replaces the
/// secret, `--oidc-issuer` the issuer, and waiving the issuer and audience
/// check replaces both.
const JWT_DEFAULTS: [(&[&str], [&str; 2]); 3] = [
    (
        &[
            "--jwt-secret",
            "--jwt-secret-file",
            "--jwt-public-key",
            "--jwt-jwks-url",
            "--oidc-issuer",
        ],
        ["--jwt-secret", JWT_SECRET],
    ),
    (
        &[
            "--jwt-issuer",
            "--oidc-issuer",
            "--jwt-allow-any-issuer-audience",
        ],
        ["--jwt-issuer", JWT_ISSUER],
    ),
    (
        &["--jwt-audience", "--jwt-allow-any-issuer-audience"],
        ["--jwt-audience", JWT_AUDIENCE],
    ),
];

/// The default JWT flags that `flags` does not replace.
fn jwt_defaults<S: AsRef<str>>(flags: &[S]) -> Vec<&'static str> {
    let given = |name: &str| {
        flags.iter().any(|flag| {
            let flag = flag.as_ref();
            flag == name
                || flag
                    .strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with('='))
        })
    };
    JWT_DEFAULTS
        .iter()
        .filter(|(replaced_by, _)| !replaced_by.iter().any(|name| given(name)))
        .flat_map(|(_, pair)| *pair)
        .collect()
}

/// The configuration a gateway started with exactly `flags` (and
/// `--listen 127.0.0.1:0`) has: no test default is added.
pub fn parse_config(flags: &[&str]) -> Result<Config, clap::Error> {
    let mut args = vec!["gateway", "--listen", "127.0.0.1:0"];
    args.extend_from_slice(flags);
    Flags::try_parse_from(args).map(|flags| flags.config)
}

/// A gateway served on real TCP by this process, with request helpers.
/// Upstream-neutral: the same type fronts the simulator or a real cloud.
pub struct Gateway {
    /// `http://127.0.0.1:PORT` of the gateway.
    pub address: String,
    /// A plain HTTP client.
    pub client: reqwest::Client,
    /// The configuration the gateway was built with.
    pub config: Config,
    /// The flags it was started with (without `--listen` and the JWT
    /// defaults).
    flags: Vec<String>,
    worker: Option<Worker>,
    jobs: Option<Arc<Jobs>>,
    /// Whether the worker runs on its own, or only by [`Gateway::cycle`].
    worker_loop: bool,
    server: Option<(oneshot::Sender<()>, JoinHandle<anyhow::Result<()>>)>,
}

/// A gateway in front of an `openstack-sim` of its own.
pub struct TestApp {
    /// The gateway.
    pub gateway: Gateway,
    /// The simulator, to steer it and count calls.
    pub sim: Sim,
    /// Keeps the simulator, the store and clouds.yaml for the test's life.
    cloud: TestCloud,
}

/// An `openstack-sim` on real TCP, with the store and the clouds.yaml of a
/// gateway in front of it; removed when the test ends.
pub struct TestCloud {
    /// The simulator, to steer it and count calls.
    pub sim: Sim,
    /// Keeps the simulator's listeners open.
    _running: RunningSim,
    /// Holds the store and clouds.yaml.
    _dir: tempfile::TempDir,
    database_url: String,
    clouds_file: String,
}

impl TestCloud {
    /// A simulator set up as `sim_config` says, seeded with [`test_seed`].
    pub async fn start(sim_config: SimConfig) -> TestCloud {
        let sim = Sim::new(sim_config, test_seed());
        let running = sim.start().await.expect("simulator starts");
        let dir = tempfile::tempdir().expect("temp dir");
        let clouds_file = dir.path().join("clouds.yaml");
        std::fs::write(&clouds_file, clouds_yaml(&running)).expect("write clouds.yaml");
        TestCloud {
            sim: running.sim.clone(),
            database_url: format!("sqlite://{}", dir.path().join("jobs.db").display()),
            clouds_file: clouds_file.display().to_string(),
            _running: running,
            _dir: dir,
        }
    }

    /// The gateway flags naming its store, its clouds.yaml and the tenants.
    pub fn flags(&self) -> Vec<&str> {
        self.flags_on(&self.database_url)
    }

    /// Adds a volume of 1 GiB with one available snapshot to `project`.
    pub fn add_snapshot(&self, project: &str, volume_id: &str, snapshot_id: &str) {
        self.sim.add_volume(
            project,
            VolumeSeed {
                id: volume_id.to_owned(),
                name: format!("volume-{volume_id}"),
                size: 1,
                status: "in-use".into(),
            },
        );
        self.sim.add_snapshot(
            project,
            SnapshotSeed {
                id: snapshot_id.to_owned(),
                name: format!("snapshot-{snapshot_id}"),
                description: None,
                volume_id: volume_id.to_owned(),
                status: "available".into(),
                metadata: Default::default(),
            },
        );
    }

    /// The same flags with another store (replicas on one PostgreSQL).
    pub fn flags_on<'a>(&'a self, database_url: &'a str) -> Vec<&'a str> {
        vec![
            "--database-url",
            database_url,
            "--clouds-file",
            &self.clouds_file,
            "--tenant",
            "tenant-a=tenant-a",
            "--tenant",
            "tenant-b=tenant-b",
            "--tenant",
            "tenant-r=tenant-r",
            "--tenant",
            "tenant-x=tenant-x",
        ]
    }
}

impl std::ops::Deref for TestApp {
    type Target = Gateway;

    fn deref(&self) -> &Gateway {
        &self.gateway
    }
}

impl std::ops::DerefMut for TestApp {
    fn deref_mut(&mut self) -> &mut Gateway {
        &mut self.gateway
    }
}

/// Demo-like tenants for the tests: `tenant-a` and `tenant-b` (member),
/// `tenant-r` (reader-only credential), each with volumes and snapshots.
pub fn test_seed() -> Seed {
    let mut seed = Seed::demo();
    seed.tenants.push(TenantSeed {
        name: "tenant-r".into(),
        project_id: PROJECT_R.into(),
        app_credentials: vec![AppCredentialSeed {
            id: "reader-appcred-r".into(),
            name: "reader-r".into(),
            secret: "reader-secret-r".into(),
            user_id: "rrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrr".into(),
            user_name: "user-r".into(),
            roles: vec!["reader".into()],
        }],
        users: vec![],
        volumes: vec![VolumeSeed {
            id: "000007e1-0000-4000-8000-c00000000001".into(),
            name: "reports".into(),
            size: 1,
            status: "available".into(),
        }],
        snapshots: vec![SnapshotSeed {
            id: "000005a9-0000-4000-8000-c00000000001".into(),
            name: "reports-snap-1".into(),
            description: None,
            volume_id: "000007e1-0000-4000-8000-c00000000001".into(),
            status: "available".into(),
            metadata: Default::default(),
        }],
        quotas: Quotas::UNLIMITED,
    });
    seed
}

/// The first snapshot of a seeded tenant (`a`, `b` or `c` for tenant-r).
pub fn snapshot(tenant: char, n: usize) -> String {
    format!("000005a9-0000-4000-8000-{tenant}{n:011x}")
}

/// The volume of [`snapshot`].
pub fn volume(tenant: char, n: usize) -> String {
    format!("000007e1-0000-4000-8000-{tenant}{n:011x}")
}

impl TestApp {
    /// A gateway whose worker only runs when the test calls
    /// [`Gateway::cycle`], and whose simulated backups finish only when the
    /// test says so ([`TestApp::finish_backups`]).
    pub async fn spawn() -> TestApp {
        Self::spawn_with(&[]).await
    }

    /// Same, with extra gateway flags (e.g. `--submit-attempts 2`).
    pub async fn spawn_with(extra_flags: &[&str]) -> TestApp {
        Self::spawn_on(Self::sim_config(Duration::from_secs(3600)), extra_flags).await
    }

    /// A gateway whose worker polls on its own, over a simulator whose
    /// backups take `backup_duration`: the set-up of the scenarios that
    /// also run against a real cloud.
    pub async fn spawn_live(backup_duration: Duration, extra_flags: &[&str]) -> TestApp {
        let mut flags = vec!["--poll-interval", "100ms"];
        flags.extend_from_slice(extra_flags);
        Self::spawn_configured(Self::sim_config(backup_duration), &flags, true).await
    }

    /// The simulator's settings for backups taking `backup_duration`.
    pub fn sim_config(backup_duration: Duration) -> SimConfig {
        SimConfig {
            backup_duration,
            ..SimConfig::default()
        }
    }

    /// A gateway (worker driven by the test) over a simulator set up as
    /// `sim_config` says, e.g. an older cloud.
    pub async fn spawn_on(sim_config: SimConfig, extra_flags: &[&str]) -> TestApp {
        Self::spawn_configured(sim_config, extra_flags, false).await
    }

    async fn spawn_configured(
        sim_config: SimConfig,
        extra_flags: &[&str],
        worker_loop: bool,
    ) -> TestApp {
        let cloud = TestCloud::start(sim_config).await;
        let mut flags = cloud.flags();
        // Defaults of the tests, unless the test sets the flag itself.
        for pair in [
            ["--retry-base", "10ms"],
            ["--retry-max", "10ms"],
            ["--upstream-timeout", "5s"],
        ] {
            if !extra_flags.contains(&pair[0]) {
                flags.extend_from_slice(&pair);
            }
        }
        flags.extend_from_slice(extra_flags);
        TestApp {
            gateway: Gateway::start_with(&flags, worker_loop).await,
            sim: cloud.sim.clone(),
            cloud,
        }
    }

    /// Adds a volume of 1 GiB with one available snapshot to `project`.
    pub fn add_snapshot(&self, project: &str, volume_id: &str, snapshot_id: &str) {
        self.cloud.add_snapshot(project, volume_id, snapshot_id);
    }

    /// Ends every simulated backup in `creating` now.
    pub fn finish_backups(&self) {
        self.sim.finish_pending();
    }
}

impl Gateway {
    /// Builds and serves a gateway from command-line flags, as a user would
    /// start it (`--listen 127.0.0.1:0` and the test JWT flags the given
    /// ones do not replace, [`jwt_defaults`], are added).
    pub async fn start(flags: &[&str]) -> Gateway {
        Self::start_with(flags, true).await
    }

    /// Same; without `worker_loop`, the worker only runs when the test
    /// calls [`Gateway::cycle`].
    pub async fn start_with(flags: &[&str], worker_loop: bool) -> Gateway {
        LazyLock::force(&LOGS);
        let mut args = jwt_defaults(flags);
        args.extend_from_slice(flags);
        let config = parse_config(&args).expect("valid flags");
        let mut gateway = Gateway {
            address: String::new(),
            client: reqwest::Client::new(),
            config,
            flags: flags.iter().map(|f| (*f).to_owned()).collect(),
            worker: None,
            jobs: None,
            worker_loop,
            server: None,
        };
        gateway.serve().await;
        gateway
    }

    /// Starts the gateway on the test's store and configuration (after
    /// [`TestApp::stop`]).
    pub async fn serve(&mut self) {
        let mut application = Application::build(self.config.clone())
            .await
            .expect("gateway builds");
        if !self.worker_loop {
            application = application.without_worker_loop();
        }
        self.address = format!("http://127.0.0.1:{}", application.port());
        self.worker = Some(application.worker());
        self.jobs = Some(application.jobs());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(application.run_until(async {
            let _ = stopped.await;
        }));
        self.server = Some((stop, task));
    }

    /// Stops the gateway (as a restart would) and starts a new one on the
    /// same store and configuration.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.serve().await;
    }

    /// Stops the gateway.
    pub async fn stop(&mut self) {
        if let Some((stop, task)) = self.server.take() {
            let _ = stop.send(());
            task.await
                .expect("server task")
                .expect("server stopped cleanly");
        }
    }

    /// What a stop signal does first: long polls answer now, and the
    /// worker starts no new step.
    pub fn begin_shutdown(&self) {
        self.jobs
            .as_ref()
            .expect("gateway started")
            .begin_shutdown();
    }

    /// Runs one worker cycle.
    pub async fn cycle(&self) {
        let worker = self.worker.as_ref().expect("gateway started");
        worker.cycle().await.expect("worker cycle");
    }

    /// This gateway's flags for a process of its own (the same callers,
    /// tenants and clouds), on the store `database_url`.
    pub fn process_flags(&self, database_url: &str) -> Vec<String> {
        let mut flags: Vec<String> = jwt_defaults(&self.flags)
            .into_iter()
            .map(str::to_owned)
            .collect();
        let mut given = self.flags.iter();
        while let Some(flag) = given.next() {
            if flag == "--database-url" {
                given.next();
                continue;
            }
            flags.push(flag.clone());
        }
        flags.extend(["--database-url".to_owned(), database_url.to_owned()]);
        flags
    }

    /// Runs one purge of finished jobs and expired idempotency keys.
    pub async fn purge(&self) -> backup_gateway::jobs::Purged {
        let jobs = self.jobs.as_ref().expect("gateway started");
        jobs.purge().await.expect("purge")
    }

    /// `POST /jobs/{id}/cancel` as `tenant`.
    pub async fn cancel(&self, tenant: &str, job_id: &str) -> Answer {
        let response = self
            .request(
                Method::POST,
                &format!("/jobs/{job_id}/cancel"),
                Some(tenant),
            )
            .send()
            .await
            .expect("request sent");
        Answer::read(response).await
    }

    /// `POST /snapshots/{id}/backups` with an `Idempotency-Key`, as `tenant`.
    pub async fn create_with_key(
        &self,
        tenant: &str,
        snapshot_id: &str,
        body: Value,
        key: &str,
    ) -> Answer {
        let response = self
            .request(
                Method::POST,
                &format!("/snapshots/{snapshot_id}/backups"),
                Some(tenant),
            )
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
            .await
            .expect("request sent");
        Answer::read(response).await
    }

    /// The base URL of the API (`http://127.0.0.1:PORT`).
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The gateway's store.
    pub fn store(&self) -> Arc<dyn backup_gateway::store::JobStore> {
        self.jobs.as_ref().expect("gateway started").store().clone()
    }

    /// Long polls waiting in the gateway now.
    pub fn waiting(&self) -> usize {
        self.jobs.as_ref().expect("gateway started").waiting()
    }

    /// A job as the store holds it, whatever its tenant.
    pub async fn job_in_store(&self, job_id: &str) -> Option<backup_gateway::jobs::model::Job> {
        let jobs = self.jobs.as_ref().expect("gateway started");
        jobs.store()
            .get(job_id.parse().expect("job id"))
            .await
            .expect("store answers")
    }

    /// Runs SQL on the gateway's SQLite store directly (to damage a row as
    /// a bad write or disk would).
    pub async fn store_sql(&self, sql: &str) {
        let pool = sqlx::SqlitePool::connect(self.config.database_url.expose_secret())
            .await
            .expect("store opens");
        // Test-only SQL written by the test itself.
        sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&pool)
            .await
            .expect("sql runs");
        pool.close().await;
    }

    /// A caller token for `tenant`, valid for an hour, signed with the
    /// tests' secret (the default key source).
    pub fn token(&self, tenant: &str) -> String {
        sign_hs256(
            &SecretString::from(JWT_SECRET.to_owned()),
            &caller_claims(tenant),
        )
        .expect("sign")
    }

    /// A request as `tenant` (`None`: no Authorization header).
    pub fn request(
        &self,
        method: Method,
        path: &str,
        tenant: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let builder = self
            .client
            .request(method, format!("{}{path}", self.address));
        match tenant {
            Some(tenant) => builder.bearer_auth(self.token(tenant)),
            None => builder,
        }
    }

    /// `POST /snapshots/{id}/backups` with a JSON body, as `tenant`.
    pub async fn create_backup(&self, tenant: &str, snapshot_id: &str, body: Value) -> Answer {
        let response = self
            .request(
                Method::POST,
                &format!("/snapshots/{snapshot_id}/backups"),
                Some(tenant),
            )
            .json(&body)
            .send()
            .await
            .expect("request sent");
        Answer::read(response).await
    }

    /// `GET path` as `tenant`.
    pub async fn get(&self, tenant: &str, path: &str) -> Answer {
        let response = self
            .request(Method::GET, path, Some(tenant))
            .send()
            .await
            .expect("request sent");
        Answer::read(response).await
    }

    /// `GET /jobs/{id}` as `tenant`, expecting 200.
    pub async fn job(&self, tenant: &str, job_id: &str) -> Value {
        let answer = self.get(tenant, &format!("/jobs/{job_id}")).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        answer.body
    }

    /// Creates a backup and expects `202`; returns the job.
    pub async fn create_ok(&self, tenant: &str, snapshot_id: &str) -> Value {
        let answer = self.create_backup(tenant, snapshot_id, json!({})).await;
        assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.body);
        answer.body
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some((stop, _)) = self.server.take() {
            let _ = stop.send(());
        }
    }
}

/// An answer, read whole.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: StatusCode,
    /// Headers.
    pub headers: reqwest::header::HeaderMap,
    /// Body as JSON (`Null` when empty or not JSON).
    pub body: Value,
    /// Body as text.
    pub text: String,
    /// The path the request was sent to.
    pub path: String,
}

impl Answer {
    /// Reads a response.
    pub async fn read(response: reqwest::Response) -> Answer {
        let status = response.status();
        let path = response.url().path().to_owned();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
            text,
            path,
        }
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts a problem+json answer of `status` and `slug`.
    #[track_caller]
    pub fn assert_problem(&self, status: u16, slug: &str) {
        assert_eq!(self.status.as_u16(), status, "{}", self.text);
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "{}",
            self.text
        );
        assert_eq!(
            self.body["type"],
            format!("/problems/{slug}"),
            "{}",
            self.text
        );
        assert_eq!(self.body["status"], status, "{}", self.text);
        assert!(self.body["title"].is_string(), "{}", self.text);
        assert!(self.body["detail"].is_string(), "{}", self.text);
        assert!(
            self.body["instance"]
                .as_str()
                .is_some_and(|i| i.starts_with("req-")),
            "{}",
            self.text
        );
        self.assert_documented(status, slug);
    }

    /// Asserts that the document lists this problem (`status` with an
    /// example of `slug`) for an operation on this answer's path: every
    /// error test is a check of the document too. A path the document does
    /// not know (an unknown route) is not checked.
    #[track_caller]
    fn assert_documented(&self, status: u16, slug: &str) {
        static SPEC: std::sync::LazyLock<Value> = std::sync::LazyLock::new(|| {
            serde_json::to_value(backup_gateway::api::openapi()).expect("the document")
        });
        let matches_path = |template: &str| {
            let (a, b): (Vec<&str>, Vec<&str>) = (
                template.split('/').collect(),
                self.path.split('/').collect(),
            );
            a.len() == b.len()
                && a.iter()
                    .zip(&b)
                    .all(|(t, p)| t == p || (t.starts_with('{') && !p.is_empty()))
        };
        let operations: Vec<&Value> = SPEC["paths"]
            .as_object()
            .expect("paths")
            .iter()
            .filter(|(template, _)| matches_path(template))
            .flat_map(|(_, item)| item.as_object().expect("item").values())
            .collect();
        // An unknown route or method is no operation's answer.
        if operations.is_empty() || matches!(slug, "not-found" | "method-not-allowed") {
            return;
        }
        let documented = operations.iter().any(|operation| {
            operation["responses"][status.to_string()]["content"]["application/problem+json"]
                ["examples"]
                .get(slug)
                .is_some()
        });
        assert!(
            documented,
            "{status} {slug} answered on {} is not in the document for that path",
            self.path
        );
    }
}

/// The clouds.yaml a user would mount: one application-credential entry per
/// tenant, plus `tenant-x`, whose secret Keystone refuses.
fn clouds_yaml(cloud: &RunningSim) -> String {
    let mut yaml = String::from("clouds:\n");
    for (name, id, secret) in [
        ("tenant-a", "demo-appcred-a", "demo-secret-a"),
        ("tenant-b", "demo-appcred-b", "demo-secret-b"),
        ("tenant-r", "reader-appcred-r", "reader-secret-r"),
        ("tenant-x", "demo-appcred-a", WRONG_SECRET),
    ] {
        yaml.push_str(&format!(
            "  {name}:\n    auth_type: v3applicationcredential\n    auth:\n      auth_url: {}\n      \
             application_credential_id: {id}\n      application_credential_secret: {secret}\n    \
             region_name: RegionOne\n    interface: public\n",
            cloud.keystone_url
        ));
    }
    yaml
}
