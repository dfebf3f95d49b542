//! The end-to-end scenarios, written once and run against two upstreams:
//! the simulator (`sim.rs`, always) and a real Keystone + Cinder, the local
//! harness or another cloud (`real.rs`, by `tests/real-openstack/run`). A
//! scenario sees only the gateway's HTTP API and the few cloud operations
//! of [`Upstream`]; it never asks which upstream it runs on.

/// One `#[tokio::test]` per scenario, each starting its cloud with
/// `$start` (an `async` constructor of an [`Upstream`]). The list is kept
/// here, once, so that both upstreams always run the same scenarios.
macro_rules! every_scenario {
    ($start:expr) => {
        super::every_scenario!(@tests $start;
            backup_runs_to_succeeded,
            concurrent_creates_make_one_job,
            missing_and_foreign_resources_are_404,
            quota_exceeded_is_409_and_leaves_no_job,
            incremental_without_full_backup_is_422,
            unknown_zone_fails_the_job_with_cinders_reason,
            reader_only_credential_is_403,
            wrong_secret_is_502_and_never_shown,
            jobs_finish_across_token_expiry,
            sigkill_after_202_still_ends_in_one_backup,
            a_replica_killed_while_it_works_the_tenant_is_taken_over,
            cancelling_a_job_cinder_has_is_409_and_the_backup_completes,
            snapshot_pages_end_with_a_full_page_and_no_token,
            a_snapshots_event_stream_follows_its_job_to_succeeded,
            a_second_backup_expects_to_complete_as_the_first_did,
            a_backups_callback_and_a_subscriber_get_its_events_signed,
        );
    };
    (@tests $start:expr; $($scenario:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $scenario() {
                let mut cloud = $start.await;
                super::$scenario(&mut cloud).await;
            }
        )*
    };
}
use every_scenario;

mod lifecycle;
pub mod real;
pub mod sim;

pub use lifecycle::{
    a_replica_killed_while_it_works_the_tenant_is_taken_over,
    cancelling_a_job_cinder_has_is_409_and_the_backup_completes,
    sigkill_after_202_still_ends_in_one_backup,
};

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Answer, Gateway, WRONG_SECRET, logs};

/// How long a scenario waits for a job to end before it fails. A bound on a
/// wait, not an assertion on speed: the real cloud takes 3-15 s a backup.
const JOB_DEADLINE: Duration = Duration::from_secs(180);

/// A cloud the scenarios run against, with a gateway in front of it.
#[expect(
    clippy::large_enum_variant,
    reason = "one per test; never moved in a loop"
)]
pub enum Upstream {
    /// The simulator.
    Sim(sim::SimCloud),
    /// A real Keystone and Cinder.
    Real(real::RealCloud),
}

impl Upstream {
    /// The gateway, configured with tenants `tenant-a` and `tenant-b`.
    pub fn gateway(&self) -> &Gateway {
        match self {
            Upstream::Sim(cloud) => &cloud.app,
            Upstream::Real(cloud) => &cloud.gateway,
        }
    }

    /// The gateway configured with the special tenants: `tenant-r` (an
    /// application credential with the reader role only) and `tenant-x`
    /// (tenant-a's credential with a wrong secret, [`WRONG_SECRET`]).
    pub async fn special_gateway(&mut self) -> &Gateway {
        match self {
            Upstream::Sim(cloud) => &cloud.app,
            Upstream::Real(cloud) => cloud.special_gateway().await,
        }
    }

    /// Restarts the gateway: a new process with an empty token cache.
    pub async fn restart_gateway(&mut self) {
        match self {
            Upstream::Sim(cloud) => cloud.app.restart().await,
            Upstream::Real(cloud) => cloud.gateway.restart().await,
        }
    }

    /// A new volume with an available snapshot, for `tenant`; the snapshot id.
    pub async fn fresh_snapshot(&self, tenant: &str) -> String {
        match self {
            Upstream::Sim(cloud) => cloud.fresh_snapshot(tenant),
            Upstream::Real(cloud) => cloud.fresh_snapshot(tenant).await,
        }
    }

    /// Sets the tenant's backup quota to its current usage, so that the next
    /// backup exceeds it. The quota is lifted again when the guard drops.
    pub async fn cap_backups_at_usage(&self, tenant: &str) -> CloudGuard {
        match self {
            Upstream::Sim(cloud) => cloud.cap_backups_at_usage(tenant),
            Upstream::Real(cloud) => cloud.cap_backups_at_usage(tenant),
        }
    }

    /// An administrator's reset of a snapshot Cinder left `backing-up`, done
    /// when the guard drops, so that the scenario leaves the cloud as it was.
    pub fn reset_snapshot_later(&self, snapshot_id: &str) -> CloudGuard {
        match self {
            Upstream::Sim(cloud) => cloud.reset_snapshot_later(snapshot_id),
            Upstream::Real(cloud) => cloud.reset_snapshot_later(snapshot_id),
        }
    }

    /// Makes backups take seconds, as a real cloud's do (which are left
    /// as they are), until the guard drops.
    pub fn slow_backups(&self) -> CloudGuard {
        match self {
            Upstream::Sim(cloud) => cloud.slow_backups(),
            Upstream::Real(_) => CloudGuard::new(|| {}),
        }
    }

    /// Makes tokens issued from now on short-lived, and (where the cloud can
    /// be told) backups slower than a token's life; returns the lifetime.
    /// The usual settings come back when the guard drops.
    pub async fn shorten_tokens(&self) -> (Duration, CloudGuard) {
        match self {
            Upstream::Sim(cloud) => cloud.shorten_tokens(),
            Upstream::Real(cloud) => cloud.shorten_tokens(),
        }
    }
}

/// Undoes a cloud-wide change when dropped, even when the scenario fails.
pub struct CloudGuard(Option<Box<dyn FnOnce()>>);

impl CloudGuard {
    /// A guard running `undo` on drop.
    pub fn new(undo: impl FnOnce() + 'static) -> CloudGuard {
        CloudGuard(Some(Box::new(undo)))
    }
}

impl Drop for CloudGuard {
    fn drop(&mut self) {
        if let Some(undo) = self.0.take() {
            undo();
        }
    }
}

impl Gateway {
    /// Long-polls a job until it is done; fails past [`JOB_DEADLINE`].
    pub async fn wait_done(&self, tenant: &str, job_id: &str) -> Value {
        let deadline = tokio::time::Instant::now() + JOB_DEADLINE;
        loop {
            let answer = self.get(tenant, &format!("/jobs/{job_id}?wait=20")).await;
            assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
            if answer.body["done"] == true {
                return answer.body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "job {job_id} not done after {JOB_DEADLINE:?}: {}",
                answer.text
            );
        }
    }
}

fn id_of(job: &Value) -> String {
    job["id"].as_str().expect("job id").to_owned()
}

/// List the snapshots, back one up, follow the job to `succeeded`, and find
/// the backup in Cinder with the request's fields and the job id.
pub async fn backup_runs_to_succeeded(cloud: &mut Upstream) {
    let snapshot_id = cloud.fresh_snapshot("tenant-a").await;
    let gateway = cloud.gateway();

    let listed = gateway.get("tenant-a", "/snapshots?limit=1000").await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    let ids: Vec<&str> = listed.body["snapshots"]
        .as_array()
        .expect("snapshots")
        .iter()
        .filter_map(|s| s["id"].as_str())
        .collect();
    assert!(
        ids.contains(&snapshot_id.as_str()),
        "{snapshot_id} not in {ids:?}"
    );

    let created = gateway
        .create_backup(
            "tenant-a",
            &snapshot_id,
            json!({"name": "scenario-nightly", "description": "made by a scenario", "metadata": {"team": "db"}}),
        )
        .await;
    assert_eq!(created.status, StatusCode::ACCEPTED, "{}", created.text);
    let job_id = id_of(&created.body);
    assert_eq!(
        created.header("location"),
        Some(format!("/jobs/{job_id}").as_str())
    );
    assert!(
        matches!(created.body["state"].as_str(), Some("queued" | "running")),
        "{}",
        created.text
    );

    let job = gateway.wait_done("tenant-a", &job_id).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let backup_id = job["backup_id"].as_str().expect("backup id");

    let made = gateway
        .get("tenant-a", &format!("/snapshots/{snapshot_id}/backups"))
        .await;
    assert_eq!(made.status, StatusCode::OK, "{}", made.text);
    let backups = made.body["backups"].as_array().expect("backups");
    let backup = backups
        .iter()
        .find(|b| b["id"] == backup_id)
        .expect("the job's backup is listed");
    assert_eq!(backup["status"], "available");
    assert_eq!(backup["name"], "scenario-nightly");
    assert_eq!(backup["description"], "made by a scenario");
    assert_eq!(backup["metadata"]["gateway_job_id"], job_id);
    assert_eq!(backup["metadata"]["team"], "db");
    assert_eq!(backup["job_id"], job_id);
    let jobs = made.body["jobs"].as_array().expect("jobs");
    assert!(jobs.iter().any(|j| j["id"] == job_id.as_str()));
}

/// A stream of the snapshot's events, opened before the create, carries
/// each step of its job as the cloud takes it, numbered in order.
pub async fn a_snapshots_event_stream_follows_its_job_to_succeeded(cloud: &mut Upstream) {
    let snapshot_id = cloud.fresh_snapshot("tenant-a").await;
    let gateway = cloud.gateway();
    let mut stream = crate::events::EventStream::open_ok(
        gateway,
        "tenant-a",
        &format!("/events?snapshot_id={snapshot_id}"),
        None,
    )
    .await;

    let created = gateway
        .create_backup("tenant-a", &snapshot_id, json!({}))
        .await;
    assert_eq!(created.status, StatusCode::ACCEPTED, "{}", created.text);
    let job_id = id_of(&created.body);
    let job = gateway.wait_done("tenant-a", &job_id).await;
    assert_eq!(job["state"], "succeeded", "{job}");

    // Written by now: the stream hands them out as fast as they are read.
    let mut seen = Vec::new();
    while seen
        .last()
        .map(|e: &crate::events::SseEvent| e.event.as_str())
        != Some("job.succeeded")
    {
        let event = stream
            .next()
            .await
            .unwrap_or_else(|| panic!("an event after {seen:?}"));
        seen.push(event);
    }
    let kinds: Vec<&str> = seen.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "job.created",
            "job.submitted",
            "job.running",
            "job.succeeded"
        ]
    );
    let ids: Vec<u64> = seen
        .iter()
        .map(|e| e.id.parse().expect("a number"))
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    assert!(
        seen.iter()
            .all(|e| e.data["data"]["job_id"] == job_id.as_str())
    );
    assert_eq!(seen[2].data["data"]["backup_id"], job["backup_id"]);
    assert_eq!(seen[3].data["data"]["state"], "succeeded");
}

/// A create's `callback_url` and a subscription of the tenant both receive
/// the job's events, signed with their secrets (verified by the receiver).
pub async fn a_backups_callback_and_a_subscriber_get_its_events_signed(cloud: &mut Upstream) {
    use crate::webhooks::{Receiver, has, subscribe, types_of};
    let snapshot_id = cloud.fresh_snapshot("tenant-a").await;
    let gateway = cloud.gateway();
    let receiver = Receiver::start().await;
    let webhook = subscribe(
        gateway,
        "tenant-a",
        json!({"url": receiver.url("/all"), "event_types": ["job.running", "job.succeeded"]}),
    )
    .await;
    receiver.trust(webhook["secret"].as_str().expect("secret"));

    let created = gateway
        .create_backup(
            "tenant-a",
            &snapshot_id,
            json!({"callback_url": receiver.url("/job")}),
        )
        .await;
    assert_eq!(created.status, StatusCode::ACCEPTED, "{}", created.text);
    receiver.trust(
        created.body["callback_secret"]
            .as_str()
            .expect("the callback's secret"),
    );
    let job_id = id_of(&created.body);
    let job = gateway.wait_done("tenant-a", &job_id).await;
    assert_eq!(job["state"], "succeeded", "{job}");

    let delivered = receiver
        .wait_for("the job's success at both", |d| {
            let at = |path: &str| {
                d.iter()
                    .filter(|r| r.path == path)
                    .cloned()
                    .collect::<Vec<_>>()
            };
            has(&at("/job"), &job_id, "job.succeeded") && has(&at("/all"), &job_id, "job.succeeded")
        })
        .await;
    let at = |path: &str| {
        delivered
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        types_of(&at("/job"), &job_id),
        [
            "job.created",
            "job.submitted",
            "job.running",
            "job.succeeded"
        ]
    );
    assert_eq!(
        types_of(&at("/all"), &job_id),
        ["job.running", "job.succeeded"]
    );
    let succeeded = delivered
        .iter()
        .find(|r| r.path == "/all" && r.body["type"] == "job.succeeded")
        .expect("the success");
    assert_eq!(succeeded.body["data"]["backup_id"], job["backup_id"]);
    assert!(
        receiver.received().iter().all(|r| r.answered == 204),
        "every delivery verified at once"
    );
}

/// Once a backup of the tenant has succeeded, the next one of the same
/// size is expected to take as long: it carries `expected_completion_at`.
pub async fn a_second_backup_expects_to_complete_as_the_first_did(cloud: &mut Upstream) {
    let first_snapshot = cloud.fresh_snapshot("tenant-a").await;
    let second_snapshot = cloud.fresh_snapshot("tenant-a").await;
    let gateway = cloud.gateway();
    let time = |job: &Value, field: &str| -> chrono::DateTime<chrono::Utc> {
        job[field].as_str().expect(field).parse().expect("a time")
    };

    let first = gateway
        .create_backup("tenant-a", &first_snapshot, json!({}))
        .await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.text);
    let first = gateway.wait_done("tenant-a", &id_of(&first.body)).await;
    assert_eq!(first["state"], "succeeded", "{first}");
    // The job's `job.running` event tells its first estimate, however
    // fast the backup ends.
    let mut stream = crate::events::EventStream::open_ok(
        gateway,
        "tenant-a",
        &format!("/events?snapshot_id={second_snapshot}"),
        None,
    )
    .await;
    let second = gateway
        .create_backup("tenant-a", &second_snapshot, json!({}))
        .await;
    assert_eq!(second.status, StatusCode::ACCEPTED, "{}", second.text);
    let second = gateway.wait_done("tenant-a", &id_of(&second.body)).await;
    let mut running = Value::Null;
    while running.is_null() {
        let event = stream.next().await.expect("the job's events");
        if event.event == "job.running" {
            running = event.data["data"].clone();
        }
    }

    assert!(
        first["size_gib"].as_u64().is_some_and(|s| s >= 1),
        "{first}"
    );
    assert_eq!(second["size_gib"], first["size_gib"]);
    assert_eq!(second["state"], "succeeded", "{second}");
    assert_eq!(
        time(&running, "expected_completion_at") - time(&second, "started_at"),
        time(&first, "finished_at") - time(&first, "started_at"),
        "as long as the first: {running}"
    );
    assert_eq!(second["expected_completion_at"], Value::Null, "ended");
}

/// Two creates for one snapshot at once: one job, one `409`, one backup.
pub async fn concurrent_creates_make_one_job(cloud: &mut Upstream) {
    let snapshot_id = cloud.fresh_snapshot("tenant-a").await;
    let gateway = cloud.gateway();

    let (one, two) = tokio::join!(
        gateway.create_backup("tenant-a", &snapshot_id, json!({"name": "racer"})),
        gateway.create_backup("tenant-a", &snapshot_id, json!({"name": "racer"}))
    );

    let (won, lost) = if one.status == StatusCode::ACCEPTED {
        (one, two)
    } else {
        (two, one)
    };
    assert_eq!(won.status, StatusCode::ACCEPTED, "{}", won.text);
    lost.assert_problem(409, "snapshot-busy");
    let job_id = id_of(&won.body);
    assert_eq!(lost.body["job_id"], job_id);
    let job = gateway.wait_done("tenant-a", &job_id).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let made = gateway
        .get("tenant-a", &format!("/snapshots/{snapshot_id}/backups"))
        .await;
    assert_eq!(
        made.body["backups"].as_array().map(Vec::len),
        Some(1),
        "{}",
        made.text
    );
    assert_eq!(
        made.body["jobs"].as_array().map(Vec::len),
        Some(1),
        "{}",
        made.text
    );
}

/// A missing snapshot, and another tenant's snapshot and job, are `404`.
pub async fn missing_and_foreign_resources_are_404(cloud: &mut Upstream) {
    let snapshot_b = cloud.fresh_snapshot("tenant-b").await;
    let gateway = cloud.gateway();

    gateway
        .create_backup(
            "tenant-a",
            "00000000-0000-4000-8000-000000000000",
            json!({}),
        )
        .await
        .assert_problem(404, "snapshot-not-found");
    gateway
        .create_backup("tenant-a", &snapshot_b, json!({}))
        .await
        .assert_problem(404, "snapshot-not-found");
    gateway
        .get("tenant-a", &format!("/snapshots/{snapshot_b}"))
        .await
        .assert_problem(404, "snapshot-not-found");

    let created = gateway
        .create_backup("tenant-b", &snapshot_b, json!({}))
        .await;
    assert_eq!(created.status, StatusCode::ACCEPTED, "{}", created.text);
    let job_id = id_of(&created.body);
    gateway
        .get("tenant-a", &format!("/jobs/{job_id}"))
        .await
        .assert_problem(404, "job-not-found");
    let listed = gateway
        .get("tenant-a", &format!("/jobs?snapshot_id={snapshot_b}"))
        .await;
    assert_eq!(listed.body["jobs"], json!([]));
    gateway.wait_done("tenant-b", &job_id).await;
}

/// Backup quota used up: `409 quota-exceeded` with Cinder's message, no job.
pub async fn quota_exceeded_is_409_and_leaves_no_job(cloud: &mut Upstream) {
    let snapshot_id = cloud.fresh_snapshot("tenant-a").await;
    let _quota = cloud.cap_backups_at_usage("tenant-a").await;
    let gateway = cloud.gateway();

    let answer = gateway
        .create_backup("tenant-a", &snapshot_id, json!({}))
        .await;

    answer.assert_problem(409, "quota-exceeded");
    assert_eq!(answer.body["upstream_status"], 413);
    assert!(
        answer.body["detail"]
            .as_str()
            .expect("detail")
            .contains("BackupLimitExceeded"),
        "{}",
        answer.text
    );
    let jobs = gateway
        .get("tenant-a", &format!("/jobs?snapshot_id={snapshot_id}"))
        .await;
    assert_eq!(jobs.body["jobs"], json!([]), "no job left behind");
    let view = gateway
        .get("tenant-a", &format!("/snapshots/{snapshot_id}"))
        .await;
    assert_eq!(view.body["status"], "available");
}

/// `incremental: true` with no full backup of the volume: `422`, Cinder's words.
pub async fn incremental_without_full_backup_is_422(cloud: &mut Upstream) {
    let snapshot_id = cloud.fresh_snapshot("tenant-a").await;
    let gateway = cloud.gateway();

    let answer = gateway
        .create_backup("tenant-a", &snapshot_id, json!({"incremental": true}))
        .await;

    answer.assert_problem(422, "backup-rejected");
    assert_eq!(answer.body["upstream_status"], 400);
    assert!(
        answer.body["detail"]
            .as_str()
            .expect("detail")
            .contains("No backups available to do an incremental backup"),
        "{}",
        answer.text
    );
    let jobs = gateway
        .get("tenant-a", &format!("/jobs?snapshot_id={snapshot_id}"))
        .await;
    assert_eq!(jobs.body["jobs"], json!([]));
}

/// An unknown availability zone: Cinder accepts, then fails the backup and
/// leaves the snapshot `backing-up`; the job and the snapshot view say so.
pub async fn unknown_zone_fails_the_job_with_cinders_reason(cloud: &mut Upstream) {
    let snapshot_id = cloud.fresh_snapshot("tenant-a").await;
    let gateway = cloud.gateway();

    let created = gateway
        .create_backup(
            "tenant-a",
            &snapshot_id,
            json!({"availability_zone": "no-such-zone"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::ACCEPTED, "{}", created.text);
    let _reset = cloud.reset_snapshot_later(&snapshot_id);

    let job = gateway.wait_done("tenant-a", &id_of(&created.body)).await;
    assert_eq!(job["state"], "failed", "{job}");
    assert_eq!(job["error"]["type"], "/problems/backup-failed");
    let detail = job["error"]["detail"].as_str().expect("detail");
    assert!(
        detail.contains("Service not found for creating backup."),
        "{detail}"
    );
    assert!(detail.contains("backing-up"), "{detail}");
    let view = gateway
        .get("tenant-a", &format!("/snapshots/{snapshot_id}"))
        .await;
    assert_eq!(view.body["status"], "backing-up");
}

/// A credential with only the reader role: `403` from the cloud's policy.
pub async fn reader_only_credential_is_403(cloud: &mut Upstream) {
    let snapshot_id = cloud.fresh_snapshot("tenant-r").await;
    let gateway = cloud.special_gateway().await;

    let listed = gateway.get("tenant-r", "/snapshots").await;
    assert_eq!(
        listed.status,
        StatusCode::OK,
        "a reader may list: {}",
        listed.text
    );
    let answer = gateway
        .create_backup("tenant-r", &snapshot_id, json!({}))
        .await;

    answer.assert_problem(403, "forbidden-by-cloud-policy");
    assert_eq!(answer.body["upstream_status"], 403);
    assert!(
        answer.body["detail"]
            .as_str()
            .expect("detail")
            .contains("backup:create"),
        "{}",
        answer.text
    );
    let jobs = gateway.get("tenant-r", "/jobs").await;
    assert_eq!(jobs.body["jobs"], json!([]));
}

/// Paging through the snapshots one at a time: every page holds one, none
/// repeats, and the last (full) page hands out no token, so a client never
/// asks for an empty page.
pub async fn snapshot_pages_end_with_a_full_page_and_no_token(cloud: &mut Upstream) {
    let first = cloud.fresh_snapshot("tenant-b").await;
    let second = cloud.fresh_snapshot("tenant-b").await;
    let gateway = cloud.gateway();

    let mut seen: Vec<String> = Vec::new();
    let mut path = "/snapshots?limit=1".to_owned();
    let last = loop {
        let page = gateway.get("tenant-b", &path).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        let ids: Vec<String> = page.body["snapshots"]
            .as_array()
            .expect("snapshots")
            .iter()
            .filter_map(|s| s["id"].as_str().map(str::to_owned))
            .collect();
        assert_eq!(ids.len(), 1, "a page of one: {}", page.text);
        assert!(!seen.contains(&ids[0]), "{} twice", ids[0]);
        seen.extend(ids);
        assert!(seen.len() <= 1000, "paging does not end");
        match page.body["next_page_token"].as_str() {
            Some(token) => path = format!("/snapshots?limit=1&page_token={token}"),
            None => break page,
        }
    };

    assert!(last.body["next_page_token"].is_null(), "{}", last.text);
    assert!(seen.contains(&first) && seen.contains(&second), "{seen:?}");
}

/// A wrong application-credential secret: `502 tenant-credentials-invalid`,
/// and the secret is neither in the answer nor in the logs.
pub async fn wrong_secret_is_502_and_never_shown(cloud: &mut Upstream) {
    let snapshot_id = cloud.fresh_snapshot("tenant-a").await;
    let gateway = cloud.special_gateway().await;

    let answers: Vec<Answer> = vec![
        gateway
            .create_backup("tenant-x", &snapshot_id, json!({}))
            .await,
        gateway.get("tenant-x", "/snapshots").await,
    ];

    for answer in answers {
        answer.assert_problem(502, "tenant-credentials-invalid");
        assert_eq!(answer.body["upstream_status"], 401, "Keystone's refusal");
        assert!(!answer.text.contains(WRONG_SECRET), "{}", answer.text);
    }
    let logs = logs();
    assert!(logs.contains("tenant-x"), "the refusal is logged");
    assert!(!logs.contains(WRONG_SECRET), "the secret is logged");
}

/// Tokens that expire while jobs run: the gateway authenticates again and
/// every job still finishes.
pub async fn jobs_finish_across_token_expiry(cloud: &mut Upstream) {
    let first = cloud.fresh_snapshot("tenant-a").await;
    let second = cloud.fresh_snapshot("tenant-a").await;
    let (lifetime, _tokens) = cloud.shorten_tokens().await;
    // A new gateway process, so that its first token is a short-lived one.
    cloud.restart_gateway().await;
    let gateway = cloud.gateway();
    let issued = || logs().matches("issued Keystone token").count();
    let issued_before = issued();

    let one = gateway.create_backup("tenant-a", &first, json!({})).await;
    assert_eq!(one.status, StatusCode::ACCEPTED, "{}", one.text);
    // Outlive the token the first create was made with, while its job runs.
    tokio::time::sleep(lifetime + Duration::from_secs(1)).await;
    let two = gateway.create_backup("tenant-a", &second, json!({})).await;
    assert_eq!(two.status, StatusCode::ACCEPTED, "{}", two.text);

    for job_id in [id_of(&one.body), id_of(&two.body)] {
        let job = gateway.wait_done("tenant-a", &job_id).await;
        assert_eq!(job["state"], "succeeded", "{job}");
    }
    assert!(
        issued() - issued_before >= 2,
        "the gateway authenticated again"
    );
}
