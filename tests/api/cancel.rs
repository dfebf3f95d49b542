//! `POST /jobs/{job_id}/cancel`: only while Cinder cannot have the backup.

use openstack_sim::{Fault, FaultKind, Op};
use reqwest::StatusCode;

use crate::helpers::{PROJECT_A, TestApp, snapshot};

#[tokio::test]
async fn a_queued_job_whose_post_never_reached_cinder_is_cancelled_and_stays_readable() {
    // Arrange: Cinder refuses the token (401, which does nothing) and
    // Keystone is down for the renewal: the POST never reached Cinder.
    let app = TestApp::spawn().await;
    app.get("tenant-a", "/snapshots").await;
    app.sim.inject(Fault {
        op: Op::BackupCreate,
        kind: FaultKind::Status(401),
        times: 1,
    });
    app.sim.inject(Fault {
        op: Op::TokenIssue,
        kind: FaultKind::Status(503),
        times: 1,
    });
    let job = app.create_ok("tenant-a", &snapshot('a', 1)).await;
    assert_eq!(job["state"], "queued", "{job}");
    let job_id = job["id"].as_str().expect("id");

    // Act
    let cancelled = app.cancel("tenant-a", job_id).await;

    // Assert
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.text);
    assert_eq!(cancelled.body["state"], "cancelled");
    assert_eq!(cancelled.body["done"], true);
    assert!(cancelled.headers.get("retry-after").is_none());
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    app.cycle().await;
    assert_eq!(app.job("tenant-a", job_id).await["state"], "cancelled");
    assert_eq!(app.sim.calls(Op::BackupCreate), 1, "never posted again");
    assert!(app.sim.backups(PROJECT_A).is_empty());
    let again = app.cancel("tenant-a", job_id).await;
    assert_eq!(again.status, StatusCode::OK, "cancelling twice is harmless");
}

#[tokio::test]
async fn cancelling_a_job_cinder_has_is_409_and_the_backup_goes_on() {
    let app = TestApp::spawn().await;
    let job = app.create_ok("tenant-a", &snapshot('a', 1)).await;
    let job_id = job["id"].as_str().expect("id");

    let refused = app.cancel("tenant-a", job_id).await;

    refused.assert_problem(409, "job-not-cancellable");
    assert_eq!(refused.body["job_id"], job_id);
    app.finish_backups();
    app.cycle().await;
    assert_eq!(app.job("tenant-a", job_id).await["state"], "succeeded");
    let finished = app.cancel("tenant-a", job_id).await;
    finished.assert_problem(409, "job-not-cancellable");
}

#[tokio::test]
async fn a_queued_job_whose_answer_was_lost_cannot_be_cancelled() {
    // Cinder made the backup, but its answer was lost: it may have it.
    let app = TestApp::spawn().await;
    app.sim.inject(Fault {
        op: Op::BackupCreate,
        kind: FaultKind::DropAfterWork,
        times: 1,
    });
    let job = app.create_ok("tenant-a", &snapshot('a', 1)).await;
    assert_eq!(job["state"], "queued");

    let refused = app
        .cancel("tenant-a", job["id"].as_str().expect("id"))
        .await;

    refused.assert_problem(409, "job-not-cancellable");
    assert!(
        refused.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("may already have reached Cinder")),
        "{}",
        refused.text
    );
}

#[tokio::test]
async fn another_tenants_job_and_unknown_jobs_cannot_be_cancelled() {
    let app = TestApp::spawn().await;
    let job = app.create_ok("tenant-a", &snapshot('a', 1)).await;

    let foreign = app
        .cancel("tenant-b", job["id"].as_str().expect("id"))
        .await;
    let unknown = app
        .cancel("tenant-a", "01234567-89ab-7def-8123-456789abcdef")
        .await;

    foreign.assert_problem(404, "job-not-found");
    unknown.assert_problem(404, "job-not-found");
}
