//! Exactly once under faults: each test is one sequence of faults that must
//! still end in one backup or a truthful failure, named after the sequence.

use std::time::Duration;

use openstack_sim::{Fault, FaultKind, Op};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{PROJECT_A, PROJECT_B, TestApp, snapshot, volume};

fn fault(op: Op, kind: FaultKind, times: u32) -> Fault {
    Fault { op, kind, times }
}

fn id(job: &Value) -> String {
    job["id"].as_str().expect("job id").to_owned()
}

/// Backups of `project` carrying `job_id` in their metadata.
fn backups_of(app: &TestApp, project: &str, job_id: &str) -> usize {
    app.sim
        .backups(project)
        .iter()
        .filter(|b| b["metadata"]["gateway_job_id"] == job_id)
        .count()
}

/// Warms tenant-a's token, then makes Cinder's next backup create take
/// `millis` before it answers (or, if the gateway has gone, does its work).
async fn slow_next_create(app: &TestApp, millis: u64) {
    app.get("tenant-a", "/snapshots").await;
    app.sim.inject(fault(
        Op::BackupCreate,
        FaultKind::Delay(Duration::from_millis(millis)),
        1,
    ));
}

/// Leaves tenant-a no backup quota: Cinder refuses every create (413).
fn no_backup_quota(app: &TestApp) {
    app.sim.set_quotas(
        PROJECT_A,
        openstack_sim::Quotas {
            backups: 0,
            ..openstack_sim::Quotas::UNLIMITED
        },
    );
}

/// Lets a retry fall due (the tests' backoff is 10 ms), then runs a cycle.
async fn later_cycle(app: &TestApp) {
    tokio::time::sleep(Duration::from_millis(30)).await;
    app.cycle().await;
}

/// The upstream time limit of tests whose POSTs get no answer: the worker
/// waits twice this long after such a POST before it looks for its backup.
const SHORT_TIMEOUT: &str = "700ms";

/// Waits until a POST without an answer may be settled, then runs a cycle.
async fn settled_cycle(app: &TestApp) {
    tokio::time::sleep(Duration::from_millis(1500)).await;
    app.cycle().await;
}

#[tokio::test]
async fn unclear_create_then_failing_listings_never_fail_or_repost_the_job() {
    // Arrange: Cinder makes the backup but its answer is lost, then the
    // volume's backup listing fails for longer than the attempts allow.
    let app = TestApp::spawn_with(&[
        "--submit-attempts",
        "2",
        "--upstream-timeout",
        SHORT_TIMEOUT,
    ])
    .await;
    app.sim
        .inject(fault(Op::BackupCreate, FaultKind::DropAfterWork, 1));
    app.sim
        .inject(fault(Op::BackupDetail, FaultKind::Status(503), 5));
    let job = app.create_ok("tenant-a", &snapshot('a', 1)).await;
    assert_eq!(job["state"], "queued");

    // Act: five cycles whose listing fails.
    settled_cycle(&app).await;
    for _ in 0..4 {
        later_cycle(&app).await;
    }

    // Assert: never failed, never posted again.
    let job = app.job("tenant-a", &id(&job)).await;
    assert_eq!(job["state"], "queued", "{job}");
    assert_eq!(job["attempts"], 1, "listing failures are not attempts");
    assert_eq!(app.sim.calls(Op::BackupCreate), 1);

    // Act: the listing works again.
    later_cycle(&app).await;

    // Assert: the lost answer's backup is adopted; there is one.
    let job = app.job("tenant-a", &id(&job)).await;
    assert_eq!(job["state"], "running", "{job}");
    assert_eq!(backups_of(&app, PROJECT_A, &id(&job)), 1);
    assert_eq!(app.sim.calls(Op::BackupCreate), 1);
}

#[tokio::test]
async fn unclear_create_whose_backups_cannot_be_listed_past_stuck_after_fails_as_unknown() {
    let app = TestApp::spawn_with(&[
        "--stuck-after",
        "300ms",
        "--upstream-timeout",
        SHORT_TIMEOUT,
    ])
    .await;
    app.sim
        .inject(fault(Op::BackupCreate, FaultKind::DropAfterWork, 1));
    app.sim
        .inject(fault(Op::BackupDetail, FaultKind::Status(503), 1000));
    let job = app.create_ok("tenant-a", &snapshot('a', 1)).await;

    settled_cycle(&app).await;

    let job = app.job("tenant-a", &id(&job)).await;
    assert_eq!(job["state"], "failed", "{job}");
    assert_eq!(job["error"]["type"], "/problems/backup-outcome-unknown");
    let detail = job["error"]["detail"].as_str().expect("detail");
    assert!(
        detail.contains(&volume('a', 1)),
        "names the volume: {detail}"
    );
    assert!(detail.contains("may exist"), "{detail}");
    assert_eq!(app.sim.calls(Op::BackupCreate), 1, "never posted again");
}

#[tokio::test]
async fn answered_queued_then_refused_ends_failed_and_stays_readable() {
    // Arrange: the create's budget (request limit less 2 s = 1 s here) runs
    // out while Cinder takes 1.3 s to refuse it (no quota left).
    let app = TestApp::spawn_with(&["--max-wait", "0s", "--upstream-timeout", "1500ms"]).await;
    no_backup_quota(&app);
    slow_next_create(&app, 1300).await;

    // Act
    let answer = app
        .create_backup("tenant-a", &snapshot('a', 1), json!({}))
        .await;

    // Assert: answered queued; once Cinder refuses, the job is failed with
    // its reason, never gone.
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.text);
    assert_eq!(answer.body["state"], "queued");
    let job_id = id(&answer.body);
    let mut job = Value::Null;
    for _ in 0..100 {
        job = app.job("tenant-a", &job_id).await;
        if job["done"] == true {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(job["state"], "failed", "{job}");
    assert_eq!(job["error"]["type"], "/problems/quota-exceeded", "{job}");
}

#[tokio::test]
async fn running_jobs_of_a_tenant_whose_credentials_are_refused_end_with_that_cause() {
    // Arrange: a running job, then Keystone refuses the tenant's credential.
    let app = TestApp::spawn_with(&["--stuck-after", "300ms"]).await;
    let job = app.create_ok("tenant-a", &snapshot('a', 1)).await;
    app.sim.expire_tokens();
    app.sim
        .inject(fault(Op::TokenIssue, FaultKind::Status(401), 1000));

    // Act
    tokio::time::sleep(Duration::from_millis(400)).await;
    app.cycle().await;

    // Assert: ended with the real cause, not left running for ever.
    let job = app.job("tenant-a", &id(&job)).await;
    assert_eq!(job["state"], "failed", "{job}");
    assert_eq!(
        job["error"]["type"], "/problems/tenant-credentials-invalid",
        "{job}"
    );
    assert!(
        job["error"]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("may still complete")),
        "{job}"
    );
}

#[tokio::test]
async fn running_jobs_of_a_tenant_removed_from_the_map_end_as_not_configured() {
    let mut app = TestApp::spawn_with(&["--stuck-after", "300ms"]).await;
    let job = app.create_ok("tenant-a", &snapshot('a', 1)).await;

    // Act: restarted without tenant-a in the map.
    app.gateway
        .config
        .tenants
        .retain(|(tenant, _)| tenant != "tenant-a");
    app.restart().await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    app.cycle().await;

    // Assert: read through the store (no caller can see it any more).
    let stored = app.job_in_store(&id(&job)).await.expect("the job is kept");
    assert_eq!(stored.state.as_str(), "failed");
    let error = stored.error.expect("error");
    assert_eq!(error.slug(), "tenant-not-configured", "{}", error.detail);
}

#[tokio::test]
async fn a_cloud_entry_now_acting_for_another_project_ends_old_jobs_as_project_changed() {
    // Arrange: a running job of tenant-a's project.
    let mut app = TestApp::spawn().await;
    let job = app.create_ok("tenant-a", &snapshot('a', 1)).await;

    // Act: restarted with the `tenant-a` entry holding tenant-b's credential.
    let clouds_file = app.gateway.config.clouds_file.clone().expect("clouds file");
    let yaml = std::fs::read_to_string(&clouds_file).expect("read clouds.yaml");
    let swapped = yaml.replacen(
        "application_credential_id: demo-appcred-a\n      application_credential_secret: demo-secret-a",
        "application_credential_id: demo-appcred-b\n      application_credential_secret: demo-secret-b",
        1,
    );
    assert_ne!(yaml, swapped);
    std::fs::write(&clouds_file, swapped).expect("write clouds.yaml");
    app.restart().await;
    app.cycle().await;

    // Assert: a clear problem, never "deleted"; the backup is untouched.
    let stored = app.job_in_store(&id(&job)).await.expect("the job is kept");
    let error = stored.error.expect("error");
    assert_eq!(error.slug(), "tenant-project-changed", "{}", error.detail);
    assert!(error.detail.contains(PROJECT_B), "{}", error.detail);
    assert_eq!(backups_of(&app, PROJECT_A, &id(&job)), 1);
}

#[tokio::test]
async fn a_backup_in_a_status_the_worker_does_not_handle_counts_toward_stuck_after() {
    let app = TestApp::spawn_with(&["--stuck-after", "300ms"]).await;
    let job = app.create_ok("tenant-a", &snapshot('a', 1)).await;
    let backup_id = job["backup_id"].as_str().expect("backup id").to_owned();
    app.sim.set_backup_status(&backup_id, "restoring");

    app.cycle().await;
    assert_eq!(app.job("tenant-a", &id(&job)).await["state"], "running");

    tokio::time::sleep(Duration::from_millis(400)).await;
    app.cycle().await;

    let job = app.job("tenant-a", &id(&job)).await;
    assert_eq!(job["state"], "failed", "{job}");
    assert_eq!(job["error"]["type"], "/problems/backup-stuck");
    assert!(
        job["error"]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("restoring") && d.contains(&backup_id)),
        "{job}"
    );
}

#[tokio::test]
async fn a_timed_out_post_is_not_listed_before_the_upstream_timeout_has_passed() {
    // Arrange: Cinder makes the backup after the gateway gave up waiting.
    let app = TestApp::spawn_with(&["--upstream-timeout", "1s"]).await;
    slow_next_create(&app, 1500).await;
    let answer = app
        .create_backup("tenant-a", &snapshot('a', 1), json!({}))
        .await;
    assert_eq!(answer.body["state"], "queued", "{}", answer.text);
    assert_eq!(
        answer.body["error"]["detail"], "Cinder did not answer within 1s",
        "no internal address in the problem"
    );
    app.sim.reset_calls();

    // Act: a cycle once a plain retry would be due (10 ms backoff) does
    // not look yet...
    tokio::time::sleep(Duration::from_millis(200)).await;
    app.cycle().await;
    assert_eq!(app.sim.calls(Op::BackupDetail), 0, "too early to list");

    // ...one after the upstream timeout adopts Cinder's late backup.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    app.cycle().await;

    let job = app.job("tenant-a", &id(&answer.body)).await;
    assert_eq!(job["state"], "running", "{job}");
    assert_eq!(app.sim.calls(Op::BackupCreate), 0, "never posted again");
    assert_eq!(backups_of(&app, PROJECT_A, &id(&job)), 1);
}

#[tokio::test]
async fn one_unreadable_row_is_skipped_reported_and_every_other_job_carries_on() {
    // Arrange: two running jobs; one row is damaged while the gateway is
    // down (a SQLite store is its process's alone: it keeps the jobs it
    // wrote in memory, and reads them again when it starts).
    let mut app = TestApp::spawn().await;
    let damaged = app.create_ok("tenant-a", &snapshot('a', 1)).await;
    let healthy = app.create_ok("tenant-b", &snapshot('b', 1)).await;
    app.stop().await;
    app.store_sql(&format!(
        "UPDATE jobs SET options = 'not json' WHERE id = '{}'",
        id(&damaged)
    ))
    .await;
    app.serve().await;

    // Act
    app.finish_backups();
    app.cycle().await;

    // Assert
    let healthy = app.job("tenant-b", &id(&healthy)).await;
    assert_eq!(healthy["state"], "succeeded", "{healthy}");
    let ready = app.get("tenant-a", "/readyz").await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.text);
    assert_eq!(ready.body["unreadable_jobs"], json!([id(&damaged)]));
}

#[tokio::test]
async fn wrong_credentials_cost_one_keystone_call_per_backoff_interval() {
    // Arrange: tenant-x's secret is refused; the backoff is long.
    let app =
        TestApp::spawn_with(&["--keystone-retry-base", "1h", "--keystone-retry-max", "1h"]).await;
    app.sim.reset_calls();

    // Act: 10 concurrent requests, then 10 more one by one.
    let mut concurrent = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let request = app.request(reqwest::Method::GET, "/snapshots", Some("tenant-x"));
        concurrent.spawn(async move { request.send().await.map(|r| r.status()) });
    }
    let statuses = concurrent.join_all().await;
    let mut answers = Vec::new();
    for _ in 0..10 {
        answers.push(app.get("tenant-x", "/snapshots").await);
    }

    // Assert: every caller got the refusal, Keystone was asked once.
    assert!(
        statuses
            .iter()
            .all(|s| s.as_ref().is_ok_and(|s| s.as_u16() == 502)),
        "{statuses:?}"
    );
    for answer in &answers {
        answer.assert_problem(502, "tenant-credentials-invalid");
    }
    assert_eq!(app.sim.calls(Op::TokenIssue), 1);
}

#[tokio::test]
async fn long_polls_past_the_cap_answer_at_once() {
    let app = TestApp::spawn_with(&["--max-waiters", "1"]).await;
    let job = app.create_ok("tenant-a", &snapshot('a', 1)).await;
    let path = format!("/jobs/{}?wait=30", id(&job));
    let first = app.request(reqwest::Method::GET, &path, Some("tenant-a"));
    let first = tokio::spawn(async move { first.send().await.map(|r| r.status()) });
    // Let the first long poll register.
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        if app.gateway.waiting() == 1 {
            break;
        }
    }
    assert_eq!(app.gateway.waiting(), 1);

    let second = app.get("tenant-a", &path).await;

    assert_eq!(second.status, StatusCode::OK);
    assert_eq!(second.body["state"], "running");
    assert!(!first.is_finished(), "the first still waits");
    app.finish_backups();
    app.cycle().await;
    let first = first.await.expect("joined").expect("answered");
    assert_eq!(first, StatusCode::OK);
}

#[tokio::test]
async fn a_proxys_408_or_429_without_a_cinder_body_is_retried_not_refused() {
    let app = TestApp::spawn_with(&["--upstream-timeout", SHORT_TIMEOUT]).await;
    app.sim
        .inject(fault(Op::BackupCreate, FaultKind::BareStatus(429), 1));
    app.sim
        .inject(fault(Op::BackupCreate, FaultKind::BareStatus(408), 1));

    let answer = app
        .create_backup("tenant-a", &snapshot('a', 1), json!({}))
        .await;

    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.text);
    assert_eq!(answer.body["state"], "queued");
    assert_eq!(answer.body["error"]["upstream_status"], 429);
    // Cinder behind the proxy may still work on each: the worker waits
    // before it looks, then posts again.
    settled_cycle(&app).await;
    settled_cycle(&app).await;
    let job = app.job("tenant-a", &id(&answer.body)).await;
    assert_eq!(job["state"], "running", "{job}");
    assert_eq!(backups_of(&app, PROJECT_A, &id(&job)), 1);
}

#[tokio::test]
async fn one_submit_attempt_posts_exactly_once() {
    let app = TestApp::spawn_with(&["--submit-attempts", "1"]).await;
    app.sim
        .inject(fault(Op::BackupCreate, FaultKind::Status(503), 10));
    let job = app.create_ok("tenant-a", &snapshot('a', 1)).await;

    for _ in 0..3 {
        later_cycle(&app).await;
    }

    let job = app.job("tenant-a", &id(&job)).await;
    assert_eq!(job["state"], "failed", "{job}");
    assert!(
        job["error"]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("gave up after 1 attempts")),
        "{job}"
    );
    assert_eq!(app.sim.calls(Op::BackupCreate), 1);
}

#[tokio::test]
async fn transport_failures_name_no_internal_address() {
    let app = TestApp::spawn().await;
    app.sim
        .inject(fault(Op::BackupCreate, FaultKind::DropBeforeWork, 1));
    let job = app.create_ok("tenant-a", &snapshot('a', 1)).await;
    app.sim
        .inject(fault(Op::SnapshotShow, FaultKind::DropBeforeWork, 1));
    let refused = app
        .create_backup("tenant-a", &snapshot('a', 2), json!({}))
        .await;

    refused.assert_problem(503, "upstream-unavailable");
    for text in [refused.text.as_str(), &job["error"].to_string()] {
        assert!(
            !text.contains("127.0.0.1") && !text.contains("http://"),
            "{text}"
        );
    }
    assert_eq!(
        job["error"]["detail"],
        "Cinder cut the connection before answering"
    );
}

#[tokio::test]
async fn snapshot_id_detail_never_reaches_cinder_as_a_path_segment() {
    let app = TestApp::spawn().await;
    app.get("tenant-a", "/snapshots").await;
    app.sim.reset_calls();

    let shown = app.get("tenant-a", "/snapshots/detail").await;
    let created = app.create_backup("tenant-a", "detail", json!({})).await;

    shown.assert_problem(404, "snapshot-not-found");
    created.assert_problem(404, "snapshot-not-found");
    assert_eq!(app.sim.calls(Op::SnapshotShow), 0);
    assert_eq!(app.sim.calls(Op::SnapshotDetail), 0);
}

#[tokio::test]
async fn a_page_token_whose_snapshot_is_gone_is_a_bad_page_token() {
    let app = TestApp::spawn().await;
    let first = app.get("tenant-a", "/snapshots?limit=1").await;
    let token = first.body["next_page_token"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let marker = first.body["snapshots"][0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    app.sim.delete_snapshot(&marker);

    let next = app
        .get(
            "tenant-a",
            &format!("/snapshots?limit=1&page_token={token}"),
        )
        .await;

    next.assert_problem(400, "invalid-request");
    assert!(
        next.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("page_token")),
        "{}",
        next.text
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_slow_tenant_never_delays_another_tenants_conclusions() {
    // Arrange: both tenants have a running job; tenant-b's listings hang
    // (until the upstream time limit, 60 s here).
    let app = TestApp::spawn_live(Duration::from_secs(3600), &["--upstream-timeout", "60s"]).await;
    let a = app.create_ok("tenant-a", &snapshot('a', 1)).await;
    let b = app.create_ok("tenant-b", &snapshot('b', 1)).await;
    app.sim.inject_for(
        PROJECT_B,
        fault(
            Op::BackupList,
            FaultKind::Delay(Duration::from_secs(3600)),
            1000,
        ),
    );
    // Let tenant-b's pass get stuck in its listing.
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Act: tenant-a's backup finishes.
    app.finish_backups();

    // Assert: tenant-a's job ends while tenant-b's listing still hangs
    // (a bounded wait, far below tenant-b's 60 s).
    let mut job = Value::Null;
    for _ in 0..10 {
        job = app
            .get("tenant-a", &format!("/jobs/{}?wait=1", id(&a)))
            .await
            .body;
        if job["done"] == true {
            break;
        }
    }
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(app.job("tenant-b", &id(&b)).await["state"], "running");
}

#[tokio::test]
async fn a_job_named_by_a_conflict_is_never_removed_when_cinder_then_refuses_it() {
    // Arrange: Cinder takes 800 ms to refuse the first create (no quota
    // left); meanwhile a second create of the snapshot is told its job id.
    let app = TestApp::spawn().await;
    no_backup_quota(&app);
    slow_next_create(&app, 800).await;
    let first = app.request(
        reqwest::Method::POST,
        &format!("/snapshots/{}/backups", snapshot('a', 1)),
        Some("tenant-a"),
    );
    let first = tokio::spawn(async move { first.json(&json!({})).send().await });
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Act
    let second = app
        .create_backup("tenant-a", &snapshot('a', 1), json!({}))
        .await;
    let first = crate::helpers::Answer::read(first.await.expect("joined").expect("answered")).await;

    // Assert: the id the conflict named stays readable, failed with
    // Cinder's reason; the first caller is answered that job.
    second.assert_problem(409, "snapshot-busy");
    let named = second.body["job_id"].as_str().expect("job id").to_owned();
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.text);
    assert_eq!(first.body["id"], named.as_str());
    let job = app.job("tenant-a", &named).await;
    assert_eq!(job["state"], "failed", "{job}");
    assert_eq!(job["error"]["type"], "/problems/quota-exceeded");
}

#[tokio::test]
async fn a_proxys_429_in_front_of_keystone_is_unavailable_not_unexpected() {
    let app = TestApp::spawn().await;
    app.sim
        .inject(fault(Op::TokenIssue, FaultKind::BareStatus(429), 1));

    let answer = app.get("tenant-a", "/snapshots").await;

    answer.assert_problem(503, "upstream-unavailable");
    assert!(answer.header("retry-after").is_some());
}
