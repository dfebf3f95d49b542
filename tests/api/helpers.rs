//! Starting a gateway for a test: an `openstack-sim` on real TCP, a fresh
//! SQLite file, a clouds.yaml written as a user would write it, and the
//! gateway itself on port 0. Typed request helpers keep tests short.

use std::{sync::LazyLock, time::Duration};

use backup_gateway::{Application, auth::sign_hs256, config::Config, jobs::Worker, telemetry};
use clap::Parser;
use openstack_sim::{
    AppCredentialSeed, Quotas, RunningSim, Seed, Sim, SimConfig, SnapshotSeed, TenantSeed,
    VolumeSeed,
};
use reqwest::{Method, StatusCode};
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio::{sync::oneshot, task::JoinHandle};

/// The callers' HS256 secret in tests.
const JWT_SECRET: &str = "test-jwt-secret";

/// The secret of the `tenant-x` cloud entry, which Keystone refuses: it
/// must never appear in an answer.
pub const WRONG_SECRET: &str = "wrong-secret-do-not-leak";

/// Logs only with `TEST_LOG=1`, set up once for the whole binary.
static TRACING: LazyLock<()> = LazyLock::new(|| {
    if std::env::var_os("TEST_LOG").is_some() {
        telemetry::init(telemetry::LogFormat::Compact);
    }
});

/// Parses the gateway's own flags, so tests get exactly the defaults users get.
#[derive(Parser)]
struct Flags {
    #[command(flatten)]
    config: Config,
}

/// A running gateway with its simulated cloud.
pub struct TestApp {
    /// `http://127.0.0.1:PORT` of the gateway.
    pub address: String,
    /// A plain HTTP client.
    pub client: reqwest::Client,
    /// The simulator, to steer it and count calls.
    pub sim: Sim,
    worker: Option<Worker>,
    /// The configuration the gateway was built with.
    pub config: Config,
    /// Keeps the simulator's listeners open for the test's life.
    _cloud: RunningSim,
    server: Option<(oneshot::Sender<()>, JoinHandle<anyhow::Result<()>>)>,
    /// Holds the store and clouds.yaml; removed when the test ends.
    _dir: tempfile::TempDir,
}

/// Demo-like tenants for the tests: `tenant-a` and `tenant-b` (member),
/// `tenant-r` (reader-only credential), each with volumes and snapshots.
pub fn test_seed() -> Seed {
    let mut seed = Seed::demo();
    seed.tenants.push(TenantSeed {
        name: "tenant-r".into(),
        project_id: "7c7c7c7c7c7c4c7c8c7c7c7c7c7c7c7c".into(),
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
    /// [`TestApp::cycle`], and whose simulated backups finish only when the
    /// test says so ([`TestApp::finish_backups`]).
    pub async fn spawn() -> TestApp {
        Self::spawn_with(&[]).await
    }

    /// Same, with extra gateway flags (e.g. `--submit-attempts 2`).
    pub async fn spawn_with(extra_flags: &[&str]) -> TestApp {
        LazyLock::force(&TRACING);
        let sim = Sim::new(
            SimConfig {
                backup_duration: Duration::from_secs(3600),
                ..SimConfig::default()
            },
            test_seed(),
        );
        let cloud = sim.start().await.expect("simulator starts");
        let dir = tempfile::tempdir().expect("temp dir");
        let clouds_file = dir.path().join("clouds.yaml");
        std::fs::write(&clouds_file, clouds_yaml(&cloud)).expect("write clouds.yaml");
        let database_url = format!("sqlite://{}", dir.path().join("jobs.db").display());
        let mut args: Vec<String> = [
            "gateway",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            &database_url,
            "--jwt-secret",
            JWT_SECRET,
            "--clouds-file",
            &clouds_file.display().to_string(),
            "--tenant",
            "tenant-a=tenant-a",
            "--tenant",
            "tenant-b=tenant-b",
            "--tenant",
            "tenant-r=tenant-r",
            "--tenant",
            "tenant-x=tenant-x",
            // The worker's own loop runs once at start; tests drive the rest.
            "--poll-interval",
            "1h",
            "--retry-base",
            "10ms",
            "--retry-max",
            "10ms",
            "--upstream-timeout",
            "5s",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra_flags.iter().map(|s| s.to_string()));
        let config = Flags::try_parse_from(args).expect("valid flags").config;
        let mut app = TestApp {
            address: String::new(),
            client: reqwest::Client::new(),
            sim: cloud.sim.clone(),
            worker: None,
            config,
            _cloud: cloud,
            server: None,
            _dir: dir,
        };
        app.start().await;
        app
    }

    async fn start(&mut self) {
        let application = Application::build(self.config.clone())
            .await
            .expect("gateway builds");
        self.address = format!("http://127.0.0.1:{}", application.port());
        self.worker = Some(application.worker());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(application.run_until(async {
            let _ = stopped.await;
        }));
        self.server = Some((stop, task));
    }

    /// Stops the gateway (as a restart would) and starts a new one on the
    /// same store, clouds.yaml and simulator.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.start().await;
    }

    /// Stops the gateway; the simulator keeps running.
    pub async fn stop(&mut self) {
        if let Some((stop, task)) = self.server.take() {
            let _ = stop.send(());
            task.await
                .expect("server task")
                .expect("server stopped cleanly");
        }
    }

    /// Ends every simulated backup in `creating` now.
    pub fn finish_backups(&self) {
        self.sim.finish_pending();
    }

    /// Runs one worker cycle.
    pub async fn cycle(&self) {
        let worker = self.worker.as_ref().expect("gateway started");
        worker.cycle().await.expect("worker cycle");
    }

    /// A caller token for `tenant`, valid for an hour.
    pub fn token(&self, tenant: &str) -> String {
        sign_hs256(
            &SecretString::from(JWT_SECRET.to_owned()),
            &json!({"tenant": tenant, "sub": "test", "exp": chrono::Utc::now().timestamp() + 3600}),
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

impl Drop for TestApp {
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
}

impl Answer {
    /// Reads a response.
    pub async fn read(response: reqwest::Response) -> Answer {
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
            text,
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
