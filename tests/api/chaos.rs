//! Chaos: the real gateway binary, killed with SIGKILL at random moments
//! and restarted on the same store, in front of a simulator that fails,
//! slows, cuts and loses a share of its answers, while callers of several
//! tenants submit backups with and without an `Idempotency-Key`.
//!
//! Once chaos stops and every job is done, the simulator's records and the
//! gateway's API must agree: every job whose id was ever answered exists
//! and is done; every succeeded job has exactly one backup carrying its id
//! (the one it names); no backup exists without its job; no job has two
//! backups; no job failed while a backup was made for it.
//!
//! The size comes from the environment, so that `bench/chaos` can scale it:
//! `CHAOS_SUBMISSIONS` (30), `CHAOS_KILLS` (3), `CHAOS_TENANTS` (3),
//! `CHAOS_CONCURRENCY` (8), `CHAOS_DRAIN_SECS` (120, the bound on waiting
//! for every job to end), `CHAOS_SEED` (random; printed), `CHAOS_DIR` (keep
//! the store and the gateway's logs there instead of a temporary folder).
//! One summary line goes to stdout.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backup_gateway::auth::sign_hs256;

use crate::process::GatewayProcess;
use openstack_sim::{
    AppCredentialSeed, Chaos, Quotas, RunningSim, Seed, Sim, SimConfig, SnapshotSeed, TenantSeed,
    VolumeSeed,
};
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::{Value, json};

/// The callers' HS256 secret.
pub(super) const JWT_SECRET: &str = "chaos-jwt-secret";
/// Snapshots per volume: a volume's backup listing holds several backups.
const SNAPSHOTS_PER_VOLUME: usize = 4;
/// Requests one submission may send before its caller gives up.
const MAX_ATTEMPTS: u32 = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answered_job_ends_with_one_backup_under_chaos_and_sigkill() {
    // Arrange: tenants with one snapshot per submission, chaos on, the
    // gateway binary running on a store of its own.
    let settings = Settings::from_env();
    let started = Instant::now();
    let (dir, _temp) = work_dir();
    let seed = chaos_seed(&settings);
    let sim = Sim::new(
        SimConfig {
            backup_duration: Duration::from_millis(500),
            ..SimConfig::default()
        },
        seed.clone(),
    );
    let cloud = sim.start().await.expect("simulator starts");
    sim.set_chaos(Some(Chaos {
        error_rate: 0.3,
        error_status: 503,
        latency_rate: 0.1,
        latency: Duration::from_secs(2),
        drop_before_rate: 0.05,
        drop_after_rate: 0.05,
        keystone: true,
        seed: Some(settings.seed),
    }));
    let mut gateway = gateway_process(&dir, &cloud, &seed);
    gateway.start().await;
    let callers = Callers::new(std::slice::from_ref(&gateway.address), &seed);
    let submissions = plan(&settings, &seed, 1);

    // Act: submit from several callers while the killer strikes; then stop
    // the chaos and wait for every job to end.
    let done = Arc::new(AtomicUsize::new(0));
    let killer = tokio::spawn(killer(
        gateway,
        kill_thresholds(&settings),
        done.clone(),
        settings.seed,
    ));
    let outcomes = submit_all(&callers, &submissions, settings.concurrency, &done).await;
    let gateway = killer.await.expect("killer task");
    let chaos_stats = sim.chaos_stats();
    sim.set_chaos(None);
    let calm = Instant::now();
    let jobs = callers.wait_until_all_done(&outcomes, settings.drain).await;
    let to_terminal = calm.elapsed();

    // Assert, through the gateway's API and the simulator's records.
    let report = Report::new(&seed, &sim, &jobs, &outcomes, &callers).await;
    println!(
        "chaos summary: submissions={} keyed={} kills={} accepted={} unanswered={} refused={} \
         answered_ids={} jobs={} {} lost={} orphans={} duplicates={} failed_with_backup={} \
         succeeded_without_backup={} not_done={} snapshots_with_2_jobs={} backups={} \
         all_terminal_after={:.1}s total={:.1}s seed={} chaos=delayed:{},errors:{},dropped_before:{},dropped_after:{}",
        submissions.len(),
        submissions.iter().filter(|s| s.key.is_some()).count(),
        gateway.kills,
        outcomes.accepted,
        outcomes.unanswered,
        outcomes.refused.values().sum::<usize>(),
        outcomes.answered.len(),
        jobs.len(),
        report.states(),
        report.lost.len(),
        report.orphans.len(),
        report.duplicates.len(),
        report.failed_with_backup.len(),
        report.succeeded_without_backup.len(),
        report.not_done.len(),
        report.snapshots_with_two_jobs,
        report.backups,
        to_terminal.as_secs_f64(),
        started.elapsed().as_secs_f64(),
        settings.seed,
        chaos_stats.delayed,
        chaos_stats.errors,
        chaos_stats.dropped_before,
        chaos_stats.dropped_after,
    );
    if !outcomes.refused.is_empty() {
        println!("chaos refusals by status: {:?}", outcomes.refused);
    }
    if !report.is_clean() {
        eprintln!("{}", report.sequences(&gateway.dir));
    }
    drop(gateway);
    report.assert_clean();
}

/// The run's size, from the environment.
pub(super) struct Settings {
    pub(super) submissions: usize,
    pub(super) kills: usize,
    pub(super) tenants: usize,
    pub(super) concurrency: usize,
    pub(super) drain: Duration,
    pub(super) seed: u64,
}

impl Settings {
    fn from_env() -> Settings {
        Settings {
            submissions: env_or("CHAOS_SUBMISSIONS", 30),
            kills: env_or("CHAOS_KILLS", 3),
            tenants: env_or::<usize>("CHAOS_TENANTS", 3).max(1),
            concurrency: env_or::<usize>("CHAOS_CONCURRENCY", 8).max(1),
            drain: Duration::from_secs(env_or("CHAOS_DRAIN_SECS", 120)),
            seed: env_or("CHAOS_SEED", fastrand::u64(..)),
        }
    }
}

pub(super) fn env_or<T: FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text} is not a valid number")),
        Err(_) => default,
    }
}

/// The folder of the store, clouds.yaml and logs: `CHAOS_DIR`, or a
/// temporary one (held by the second value).
fn work_dir() -> (PathBuf, Option<tempfile::TempDir>) {
    match std::env::var_os("CHAOS_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            std::fs::create_dir_all(&dir).expect("create CHAOS_DIR");
            let _ = std::fs::remove_file(dir.join("jobs.db"));
            (dir, None)
        }
        None => {
            let temp = tempfile::tempdir().expect("temp dir");
            (temp.path().to_owned(), Some(temp))
        }
    }
}

/// A tenant's name (also its cloud entry and its callers' tenant claim).
fn tenant_name(t: usize) -> String {
    format!("chaos-{t}")
}

/// Tenants with a member credential, unlimited backup quotas, and enough
/// snapshots for one per submission, several per volume.
pub(super) fn chaos_seed(settings: &Settings) -> Seed {
    let per_tenant = settings.submissions.div_ceil(settings.tenants).max(1);
    let tenants = (0..settings.tenants)
        .map(|t| {
            let volumes: Vec<VolumeSeed> = (0..per_tenant.div_ceil(SNAPSHOTS_PER_VOLUME))
                .map(|v| VolumeSeed {
                    id: format!("7e100000-{t:04x}-4000-8000-{v:012x}"),
                    name: format!("chaos-volume-{v}"),
                    size: 1,
                    status: "in-use".into(),
                })
                .collect();
            let snapshots = (0..per_tenant)
                .map(|n| SnapshotSeed {
                    id: format!("5a900000-{t:04x}-4000-8000-{n:012x}"),
                    name: format!("chaos-snapshot-{n}"),
                    description: None,
                    volume_id: volumes[n / SNAPSHOTS_PER_VOLUME].id.clone(),
                    status: "available".into(),
                    metadata: BTreeMap::new(),
                })
                .collect();
            TenantSeed {
                name: tenant_name(t),
                project_id: format!("c4a05000{t:024x}"),
                app_credentials: vec![AppCredentialSeed {
                    id: format!("chaos-appcred-{t}"),
                    name: format!("chaos-{t}"),
                    secret: format!("chaos-secret-{t}"),
                    user_id: format!("c4a0u5e7{t:024x}"),
                    user_name: format!("chaos-user-{t}"),
                    roles: vec!["member".into(), "reader".into()],
                }],
                users: Vec::new(),
                volumes,
                snapshots,
                quotas: Quotas::UNLIMITED,
            }
        })
        .collect();
    let seed = Seed { tenants };
    seed.check().expect("a consistent seed");
    seed
}

/// One create request: its tenant, its own snapshot, its key if any, and
/// the gateway (of several replicas) it is sent to first.
pub(super) struct Submission {
    tenant: usize,
    snapshot_id: String,
    key: Option<String>,
    gateway: usize,
}

/// Tenants take turns; every other submission carries a key; with several
/// gateways, they take turns too.
pub(super) fn plan(settings: &Settings, seed: &Seed, gateways: usize) -> Vec<Submission> {
    (0..settings.submissions)
        .map(|i| {
            let tenant = i % settings.tenants;
            Submission {
                tenant,
                snapshot_id: seed.tenants[tenant].snapshots[i / settings.tenants]
                    .id
                    .clone(),
                key: (i % 2 == 0).then(|| format!("chaos-{}-{i}", settings.seed)),
                gateway: i % gateways.max(1),
            }
        })
        .collect()
}

/// After how many answered submissions each kill strikes: at random while
/// callers submit, the last once they are all answered (only the worker
/// is busy then).
fn kill_thresholds(settings: &Settings) -> Vec<usize> {
    let mut rng = fastrand::Rng::with_seed(settings.seed);
    let mut at: Vec<usize> = (0..settings.kills)
        .map(|_| rng.usize(1..=settings.submissions.max(1)))
        .collect();
    at.sort_unstable();
    if let Some(last) = at.last_mut() {
        *last = settings.submissions;
    }
    at
}

/// The chaos gateway: its flags with a SQLite store in `dir`.
fn gateway_process(dir: &Path, cloud: &RunningSim, seed: &Seed) -> GatewayProcess {
    let store = format!("sqlite://{}", dir.join("jobs.db").display());
    GatewayProcess::new(dir, gateway_flags(dir, cloud, seed, &store))
}

/// The flags of a gateway in front of the simulator: its clouds.yaml
/// (written to `dir`), the store `database_url`, the seed's tenants, and
/// fast polling and retries.
pub(super) fn gateway_flags(
    dir: &Path,
    cloud: &RunningSim,
    seed: &Seed,
    database_url: &str,
) -> Vec<String> {
    let clouds_file = dir.join("clouds.yaml");
    std::fs::write(&clouds_file, cloud.clouds_yaml()).expect("write clouds.yaml");
    let mut args: Vec<String> = [
        "--jwt-secret",
        JWT_SECRET,
        "--jwt-issuer",
        "chaos",
        "--jwt-audience",
        "backup-gateway",
        "--database-url",
        database_url,
        "--clouds-file",
        &clouds_file.display().to_string(),
        "--poll-interval",
        "100ms",
        "--retry-base",
        "50ms",
        "--retry-max",
        "500ms",
        "--keystone-retry-base",
        "50ms",
        "--keystone-retry-max",
        "500ms",
        // Shorter than the simulator's 2 s latency: delayed calls time out
        // while Cinder goes on (a timed-out POST still makes its backup),
        // and a slow create outlives its budget (max wait + 2 x timeout -
        // 2 s = 2 s) and is answered `queued`.
        "--upstream-timeout",
        "1500ms",
        "--max-wait",
        "1s",
        "--upstream-page-size",
        "25",
        // Callers here retry hard by design; the rate limit is not what
        // this test is about.
        "--rate-limit",
        "0",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    for tenant in &seed.tenants {
        args.push("--tenant".into());
        args.push(format!("{}={}", tenant.name, tenant.name));
    }
    args
}

/// Kills the gateway once `done` reaches each threshold (plus a random
/// moment), and restarts it on the same store after a random pause.
async fn killer(
    mut gateway: GatewayProcess,
    thresholds: Vec<usize>,
    done: Arc<AtomicUsize>,
    seed: u64,
) -> GatewayProcess {
    let mut rng = fastrand::Rng::with_seed(seed ^ 0x6b11);
    for threshold in thresholds {
        while done.load(Ordering::SeqCst) < threshold {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(rng.u64(0..400))).await;
        gateway.kill();
        tokio::time::sleep(Duration::from_millis(rng.u64(0..500))).await;
        gateway.start().await;
    }
    gateway
}

/// Callers of every tenant, with their tokens, in front of one gateway or
/// several replicas (as behind a load balancer: a request a replica cannot
/// take is sent to the next).
/// A caller token of the tenant `name` for a gateway of [`gateway_flags`],
/// valid for six hours.
pub(super) fn token(name: &str) -> String {
    let claims = json!({
        "tenant": name,
        "sub": "chaos",
        "iss": "chaos",
        "aud": "backup-gateway",
        "scope": "backups:read backups:write",
        "exp": chrono::Utc::now().timestamp() + 6 * 3600,
    });
    sign_hs256(&SecretString::from(JWT_SECRET.to_owned()), &claims).expect("sign")
}

pub(super) struct Callers {
    addresses: Vec<String>,
    client: reqwest::Client,
    tokens: Vec<String>,
}

impl Callers {
    pub(super) fn new(addresses: &[String], seed: &Seed) -> Callers {
        let tokens = seed
            .tenants
            .iter()
            .map(|tenant| token(&tenant.name))
            .collect();
        Callers {
            addresses: addresses.to_vec(),
            // A fresh connection per request: a connection error then means
            // this request was cut, never a stale pooled connection.
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .expect("client"),
            tokens,
        }
    }

    /// The gateway a request's `n`-th try goes to.
    fn address(&self, n: usize) -> &str {
        &self.addresses[n % self.addresses.len()]
    }

    /// `GET path` as tenant `t` (from the first gateway that answers):
    /// status and JSON body, `None` when no answer came.
    async fn get(&self, t: usize, path: &str) -> Option<(StatusCode, Value)> {
        for n in 0..self.addresses.len() {
            let sent = self
                .client
                .get(format!("{}{path}", self.address(n)))
                .bearer_auth(&self.tokens[t])
                .timeout(Duration::from_secs(30))
                .send()
                .await;
            let response = match sent {
                Ok(response) => response,
                Err(e) if e.is_connect() => continue,
                Err(_) => return None,
            };
            let status = response.status();
            let body = response.json().await.unwrap_or(Value::Null);
            return Some((status, body));
        }
        None
    }

    /// Every job of tenant `t`, through `GET /jobs` pages; `None` when a
    /// page could not be read.
    async fn all_jobs(&self, t: usize) -> Option<Vec<Value>> {
        let mut jobs = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let path = match &token {
                Some(page) => format!("/jobs?limit=100&page_token={page}"),
                None => "/jobs?limit=100".to_owned(),
            };
            let (status, body) = self.get(t, &path).await?;
            if status != StatusCode::OK {
                return None;
            }
            jobs.extend(body["jobs"].as_array().cloned().unwrap_or_default());
            match body["next_page_token"].as_str() {
                Some(next) => token = Some(next.to_owned()),
                None => return Some(jobs),
            }
        }
    }

    /// Polls until every listed job and every answered id is done, or
    /// `bound` passes; answers the jobs by id.
    pub(super) async fn wait_until_all_done(
        &self,
        outcomes: &Outcomes,
        bound: Duration,
    ) -> BTreeMap<String, Value> {
        let deadline = Instant::now() + bound;
        loop {
            let mut jobs = BTreeMap::new();
            let mut complete = true;
            for t in 0..self.tokens.len() {
                match self.all_jobs(t).await {
                    Some(listed) => jobs.extend(
                        listed
                            .into_iter()
                            .filter_map(|j| Some((j["id"].as_str()?.to_owned(), j))),
                    ),
                    None => complete = false,
                }
            }
            let all_done = complete
                && jobs.values().all(|j| j["done"] == true)
                && outcomes.answered.keys().all(|id| jobs.contains_key(id));
            if all_done || Instant::now() > deadline {
                return jobs;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// What the callers learnt from their submissions.
#[derive(Debug, Default)]
pub(super) struct Outcomes {
    /// Every job id an answer named (a `202`, or a `409` naming the job
    /// that holds the snapshot), with its tenant.
    pub(super) answered: BTreeMap<String, usize>,
    /// Submissions answered `202`.
    pub(super) accepted: usize,
    /// Submissions whose caller gave up without an answer.
    pub(super) unanswered: usize,
    /// Submissions finally refused, by status.
    pub(super) refused: BTreeMap<u16, usize>,
}

/// How one submission ended for its caller.
enum Outcome {
    /// `202` with this job.
    Accepted(String),
    /// The snapshot is held by this job (an earlier attempt's).
    Busy(String),
    /// No answer, and no key to retry with.
    Unanswered,
    /// A final refusal.
    Refused(u16),
}

/// Runs every submission, `concurrency` at a time; `done` counts the
/// finished ones (the killer watches it).
pub(super) async fn submit_all(
    callers: &Callers,
    submissions: &[Submission],
    concurrency: usize,
    done: &AtomicUsize,
) -> Outcomes {
    let next = AtomicUsize::new(0);
    let outcomes = Mutex::new(Outcomes::default());
    let lane = || async {
        loop {
            let i = next.fetch_add(1, Ordering::SeqCst);
            let Some(submission) = submissions.get(i) else {
                return;
            };
            let outcome = submit(callers, submission).await;
            let mut outcomes = outcomes.lock().unwrap_or_else(|e| e.into_inner());
            match outcome {
                Outcome::Accepted(id) => {
                    outcomes.accepted += 1;
                    outcomes.answered.insert(id, submission.tenant);
                }
                Outcome::Busy(id) => {
                    *outcomes.refused.entry(409).or_default() += 1;
                    outcomes.answered.insert(id, submission.tenant);
                }
                Outcome::Unanswered => outcomes.unanswered += 1,
                Outcome::Refused(status) => *outcomes.refused.entry(status).or_default() += 1,
            }
            drop(outcomes);
            done.fetch_add(1, Ordering::SeqCst);
        }
    };
    join_all((0..concurrency).map(|_| lane())).await;
    outcomes.into_inner().unwrap_or_else(|e| e.into_inner())
}

/// Awaits futures together on this task, so that they may borrow the
/// caller's data (no spawned tasks).
pub(super) async fn join_all<F: std::future::Future<Output = ()>>(
    futures: impl Iterator<Item = F>,
) {
    let mut futures: Vec<_> = futures.map(Box::pin).collect();
    std::future::poll_fn(|cx| {
        futures.retain_mut(|f| f.as_mut().poll(cx).is_pending());
        if futures.is_empty() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
}

/// One caller's create. With a key it retries a request left without an
/// answer; with or without, it retries what the gateway says recorded
/// nothing (`503`, `429`, a connection that was never made) and, with a
/// key, `409 idempotency-key-in-use` (the first request is still being
/// answered).
async fn submit(callers: &Callers, submission: &Submission) -> Outcome {
    let body = json!({"name": format!("chaos-{}", submission.snapshot_id)});
    let mut attempt = 0;
    loop {
        attempt += 1;
        let last = attempt >= MAX_ATTEMPTS;
        // A retry goes to the next replica, as a load balancer would send
        // it past one that is down.
        let url = format!(
            "{}/snapshots/{}/backups",
            callers.address(submission.gateway + attempt as usize - 1),
            submission.snapshot_id
        );
        let mut request = callers
            .client
            .post(&url)
            .bearer_auth(&callers.tokens[submission.tenant])
            .json(&body)
            .timeout(Duration::from_secs(30));
        if let Some(key) = &submission.key {
            request = request.header("idempotency-key", key);
        }
        match request.send().await {
            Ok(response) => {
                let status = response.status();
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok());
                let answer: Value = response.json().await.unwrap_or(Value::Null);
                let slug = answer["type"].as_str().unwrap_or("");
                match status {
                    StatusCode::ACCEPTED => {
                        if let Some(id) = answer["id"].as_str() {
                            return Outcome::Accepted(id.to_owned());
                        }
                        // A 202 whose body was cut: as good as no answer.
                        if submission.key.is_none() || last {
                            return Outcome::Unanswered;
                        }
                    }
                    StatusCode::CONFLICT if slug.ends_with("/snapshot-busy") => {
                        return match answer["job_id"].as_str() {
                            Some(id) => Outcome::Busy(id.to_owned()),
                            None => Outcome::Refused(409),
                        };
                    }
                    StatusCode::CONFLICT
                        if slug.ends_with("/idempotency-key-in-use")
                            && submission.key.is_some()
                            && !last => {}
                    StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS if !last => {
                        let wait = retry_after.unwrap_or(1).min(1);
                        tokio::time::sleep(Duration::from_secs(wait)).await;
                        continue;
                    }
                    other => return Outcome::Refused(other.as_u16()),
                }
            }
            // Refused at connect (the gateway is down): nothing was sent.
            Err(e) if e.is_connect() && !last => {}
            Err(_) if submission.key.is_some() && !last => {}
            Err(_) => return Outcome::Unanswered,
        }
        let backoff = 50u64 << attempt.min(5);
        tokio::time::sleep(Duration::from_millis(backoff.min(1000))).await;
    }
}

/// What the records say once every job has ended.
pub(super) struct Report {
    /// Answered job ids the gateway does not know.
    pub(super) lost: Vec<String>,
    /// Jobs not done.
    pub(super) not_done: Vec<String>,
    /// Backups whose `gateway_job_id` names no job of their tenant.
    pub(super) orphans: Vec<String>,
    /// Jobs with more than one backup.
    pub(super) duplicates: Vec<String>,
    /// Succeeded jobs without exactly one backup, or naming another one.
    pub(super) succeeded_without_backup: Vec<String>,
    /// Failed jobs for which a backup was made (it will be `available`).
    pub(super) failed_with_backup: Vec<String>,
    /// Snapshots with more than one job (keyed retries while the key is ignored).
    snapshots_with_two_jobs: usize,
    /// Backups in the simulator.
    pub(super) backups: usize,
    /// Jobs by id.
    pub(super) jobs: BTreeMap<String, Value>,
    /// Backups by the job id they carry.
    by_job: BTreeMap<String, Vec<Value>>,
}

impl Report {
    pub(super) async fn new(
        seed: &Seed,
        sim: &Sim,
        jobs: &BTreeMap<String, Value>,
        outcomes: &Outcomes,
        callers: &Callers,
    ) -> Report {
        let mut lost = Vec::new();
        let mut jobs = jobs.clone();
        for (id, tenant) in &outcomes.answered {
            let mut answer = None;
            for _ in 0..5 {
                answer = callers.get(*tenant, &format!("/jobs/{id}")).await;
                if answer.as_ref().is_some_and(|(status, _)| {
                    matches!(*status, StatusCode::OK | StatusCode::NOT_FOUND)
                }) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            match answer {
                Some((StatusCode::OK, job)) => {
                    jobs.insert(id.clone(), job);
                }
                Some((StatusCode::NOT_FOUND, _)) => lost.push(id.clone()),
                other => panic!("GET /jobs/{id} answered {other:?} with chaos off"),
            }
        }
        let mut by_job: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        let mut orphans = Vec::new();
        let mut backups = 0;
        for tenant in &seed.tenants {
            for backup in sim.backups(&tenant.project_id) {
                backups += 1;
                let id = backup["id"].as_str().unwrap_or("?").to_owned();
                match backup["metadata"]["gateway_job_id"].as_str() {
                    Some(job)
                        if jobs
                            .get(job)
                            .is_some_and(|j| j["project_id"] == tenant.project_id) =>
                    {
                        by_job.entry(job.to_owned()).or_default().push(backup);
                    }
                    Some(job) => {
                        orphans.push(format!("{id} (job {job})"));
                        by_job.entry(job.to_owned()).or_default().push(backup);
                    }
                    None => orphans.push(id),
                }
            }
        }
        let mut report = Report {
            lost,
            not_done: Vec::new(),
            orphans,
            duplicates: Vec::new(),
            succeeded_without_backup: Vec::new(),
            failed_with_backup: Vec::new(),
            snapshots_with_two_jobs: 0,
            backups,
            jobs: BTreeMap::new(),
            by_job: BTreeMap::new(),
        };
        let mut per_snapshot: BTreeMap<&str, usize> = BTreeMap::new();
        for (id, job) in &jobs {
            let made = by_job.get(id).map_or(&[][..], Vec::as_slice);
            if let Some(snapshot) = job["snapshot_id"].as_str() {
                *per_snapshot.entry(snapshot).or_default() += 1;
            }
            if job["done"] != true {
                report.not_done.push(id.clone());
            }
            if made.len() > 1 {
                report.duplicates.push(id.clone());
            }
            let state = job["state"].as_str().unwrap_or("");
            let names_its_backup = made.len() == 1 && made[0]["id"] == job["backup_id"];
            if state == "succeeded" && !names_its_backup {
                report.succeeded_without_backup.push(id.clone());
            }
            // A backup in `error` is a truthful failure; any other was made.
            let made_one = made.iter().any(|b| b["status"] != "error");
            if matches!(state, "failed" | "cancelled") && made_one {
                report.failed_with_backup.push(id.clone());
            }
        }
        report.snapshots_with_two_jobs = per_snapshot.values().filter(|n| **n > 1).count();
        report.jobs = jobs;
        report.by_job = by_job;
        report
    }

    /// Asserts every rule held: no answered job lost, every job done, no
    /// orphan or second backup, each succeeded job with its one backup, no
    /// failed job whose backup was made.
    #[track_caller]
    pub(super) fn assert_clean(&self) {
        for (rule, broken) in [
            ("answered jobs missing", &self.lost),
            ("jobs not done", &self.not_done),
            ("backups without a job", &self.orphans),
            ("jobs with two backups", &self.duplicates),
            (
                "succeeded jobs without their one backup",
                &self.succeeded_without_backup,
            ),
            (
                "failed jobs whose backup was made",
                &self.failed_with_backup,
            ),
        ] {
            assert!(broken.is_empty(), "{rule}: {broken:?}");
        }
    }

    pub(super) fn is_clean(&self) -> bool {
        self.lost.is_empty()
            && self.not_done.is_empty()
            && self.orphans.is_empty()
            && self.duplicates.is_empty()
            && self.succeeded_without_backup.is_empty()
            && self.failed_with_backup.is_empty()
    }

    /// `succeeded=N failed=N ...`: jobs by state.
    pub(super) fn states(&self) -> String {
        let mut by_state: BTreeMap<&str, usize> = BTreeMap::new();
        for job in self.jobs.values() {
            *by_state
                .entry(job["state"].as_str().unwrap_or("?"))
                .or_default() += 1;
        }
        ["queued", "running", "succeeded", "failed", "cancelled"]
            .iter()
            .map(|s| format!("{s}={}", by_state.get(s).copied().unwrap_or(0)))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// What happened to each job that broke a rule: the job, its backups,
    /// and what the gateway logged about it, in order.
    pub(super) fn sequences(&self, dir: &Path) -> String {
        let logs = gateway_logs(dir);
        let mut out = String::from("chaos: jobs that broke a rule\n");
        let broken: BTreeSet<&String> = self
            .lost
            .iter()
            .chain(&self.not_done)
            .chain(&self.duplicates)
            .chain(&self.succeeded_without_backup)
            .chain(&self.failed_with_backup)
            .collect();
        for id in broken.iter().take(10) {
            let _ = writeln!(out, "== job {id}");
            if let Some(job) = self.jobs.get(*id) {
                let _ = writeln!(
                    out,
                    "   state={} attempts={} backup_id={} error={}",
                    job["state"], job["attempts"], job["backup_id"], job["error"]
                );
            }
            for backup in self.by_job.get(*id).into_iter().flatten() {
                let _ = writeln!(
                    out,
                    "   backup {} status={} created_at={}",
                    backup["id"], backup["status"], backup["created_at"]
                );
            }
            for line in logs.iter().filter(|l| l.contains(id.as_str())).take(40) {
                let _ = writeln!(out, "   | {line}");
            }
        }
        for orphan in self.orphans.iter().take(10) {
            let _ = writeln!(out, "== orphan backup {orphan}");
        }
        out
    }
}

/// Every gateway log line, run by run, prefixed with the run's number.
fn gateway_logs(dir: &Path) -> Vec<String> {
    let mut lines = Vec::new();
    for run in 0.. {
        let Ok(text) = std::fs::read_to_string(dir.join(format!("gateway-{run}.log"))) else {
            break;
        };
        lines.extend(text.lines().map(|l| format!("run {run}: {l}")));
    }
    lines
}
